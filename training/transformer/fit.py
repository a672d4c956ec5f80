"""Fine-tune the multi-head classifier on prepared sequences: seeded, resumable, early-stopped.

Reads a ``prepared`` directory (``training.transformer.prepare``: token ids, labels per head, split)
and writes into a fit directory:

- ``checkpoint.pt``: model, optimizer, scheduler, RNG states and position (epoch, batch), saved every
  ``save_every`` steps or ``save_minutes`` minutes and at each epoch's end, so a stopped run resumes
  where it stopped;
- ``best/``: the weights with the best validation category macro-F1 (``model.save_model``);
- ``fit.json``: settings, per-epoch history, best epoch, seconds, ``done``.

Batches: each epoch shuffles with ``seed + epoch``, sorts chunks of 50 batches by length (less
padding) and shuffles the batches, so the order is the same on every run and on resume. Loss: the
heads' class-weighted cross-entropies, and with ``--distill`` the linear teacher's soft targets
(``training.transformer.losses``). Early stopping: ``patience`` epochs without a better validation
macro-F1. Device, precision (bfloat16 autocast where the hardware has it) and activation checkpointing
(where the activations would crowd the machine's memory): ``training.transformer.precision``.

Needs only torch, transformers, numpy, safetensors and tqdm: ``python -m training.transformer.fit``
runs it on a machine without the rest of jiesu's dependencies.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from training.metrics import macro_f1
from training.transformer.losses import batch_loss, class_weights
from training.transformer.model import MultiHeadClassifier, load_base, save_model
from training.transformer.precision import FitError, autocast, choose_checkpointing, choose_device, choose_precision

SPLITS = {"train": 0, "validation": 1, "test": 2, "unlabelled": 3}
SORT_CHUNK = 50


@dataclass
class FitConfig:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    patience: int = 2
    dropout: float = 0.1
    layers: int | None = None
    layer_decay: float = 1.0  # < 1: each layer below the top learns this much slower (LLRD)
    label_smoothing: float = 0.0
    distill: float = 0.0  # > 0: weight of the teacher's soft targets in the category loss (see ``category_loss``)
    seed: int = 13
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32 (see the module docstring)
    checkpointing: str = "auto"  # auto | on | off: activation checkpointing (``precision.choose_checkpointing``)
    save_every: int = 200
    save_minutes: float = 10.0  # also checkpoint when this long has passed (a CPU step can take 20 s)
    max_steps: int | None = None  # stop after this many steps in total (tests, smoke runs)

    def key(self) -> dict:
        """The settings a resumed run must share with the run it resumes."""
        data = asdict(self)
        for name in ("device", "precision", "checkpointing", "save_every", "save_minutes", "max_steps", "patience",
                     "epochs"):
            data.pop(name)
        # options added later: at their "off" value they are absent, so older runs keep their identity
        for name, off in (("layer_decay", 1.0), ("label_smoothing", 0.0), ("distill", 0.0)):
            if data[name] == off:
                data.pop(name)
        return data


def read_prepared(directory: Path) -> tuple[dict, list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    with np.load(directory / "sequences.npz") as arrays:
        ids, offsets, split = arrays["ids"], arrays["offsets"], arrays["split"]
        labels = {head: arrays[f"y_{head}"] for head in meta["heads"]}
    sequences = [ids[offsets[i]:offsets[i + 1]].astype(np.int64) for i in range(len(offsets) - 1)]
    return meta, sequences, split, labels


def read_soft_targets(directory: Path) -> np.ndarray | None:
    """The teacher's category probabilities written by ``prepare`` for distillation (zero rows: none)."""
    with np.load(directory / "sequences.npz") as arrays:
        return arrays["soft_category"] if "soft_category" in arrays.files else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed * 1000 + epoch)
    rows = rows[rng.permutation(len(rows))]
    batches = []
    chunk = batch_size * SORT_CHUNK
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(sequences: list[np.ndarray], rows: np.ndarray, pad_id: int,
            multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest sequence, rounded up to ``multiple`` (on a GPU, 8: fewer distinct
    shapes for the kernels to be chosen for, and tensor-core-friendly widths)."""
    width = max(len(sequences[r]) for r in rows)
    width = -(-width // multiple) * multiple
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        seq = torch.from_numpy(sequences[r])
        ids[i, :len(seq)] = seq
        mask[i, :len(seq)] = 1
    return ids, mask


def _depth(name: str, layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, layers + 1 for anything above (pooler, heads)."""
    match = re.search(r"\.layer\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return 0 if ".embeddings." in f".{name}" else layers + 1


def parameter_groups(model: MultiHeadClassifier, config: FitConfig) -> list[dict]:
    """AdamW groups: heads at ``head_lr``; encoder weights at ``lr`` × ``layer_decay`` ** (distance from
    the top layer), with weight decay on matrices only."""
    layers = model.encoder.config.num_hidden_layers
    groups: dict[tuple, dict] = {}
    for name, param in model.named_parameters():
        if name.startswith("heads."):
            key, lr, decay = ("heads",), config.head_lr, 0.0
        else:
            depth = _depth(name, layers)
            lr = config.lr * config.layer_decay ** max(0, layers - depth)
            decay = config.weight_decay if param.ndim >= 2 else 0.0
            key = ("encoder", depth, decay)
        groups.setdefault(key, {"params": [], "lr": lr, "weight_decay": decay})["params"].append(param)
    return list(groups.values())


@torch.no_grad()
def predict_logits(model: MultiHeadClassifier, sequences: list[np.ndarray], rows: np.ndarray, pad_id: int,
                   device: torch.device, batch_size: int = 64, precision: str = "fp32") -> dict[str, np.ndarray]:
    model.eval()
    lengths = np.array([len(sequences[r]) for r in rows])
    order = np.argsort(lengths, kind="stable")
    out = {name: np.zeros((len(rows), model.heads[name].out_features), dtype=np.float32) for name in model.head_names}
    for start in range(0, len(rows), batch_size):
        positions = order[start:start + batch_size]
        ids, mask = collate(sequences, rows[positions], pad_id)
        with autocast(device, precision):
            logits = model(ids.to(device), mask.to(device))
        for name, values in zip(model.head_names, logits):
            out[name][positions] = values.float().cpu().numpy()
    return out


def enable_checkpointing(encoder) -> None:
    """Activation checkpointing on every layer (transformers 5 names it ``activation_checkpointing_enable``,
    4.x ``gradient_checkpointing_enable``)."""
    kwargs = {"use_reentrant": False}
    if hasattr(encoder, "activation_checkpointing_enable"):
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def fit(prepared: Path, base_model: str | Path, out: Path, config: FitConfig, log=print,
        progress: bool = True) -> dict:
    """Train (or resume) into ``out``; returns the content of ``fit.json``."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    prepared, out = Path(prepared), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta, sequences, split, labels = read_prepared(prepared)
    soft = read_soft_targets(prepared) if config.distill > 0 else None
    if config.distill > 0 and soft is None:
        raise FitError(f"--distill {config.distill}: {prepared} holds no soft targets (prepare it with --distill)")
    if not 0 <= config.distill < 1:
        raise FitError(f"--distill must be in [0, 1), got {config.distill}")
    heads = {name: len(names) for name, names in meta["heads"].items()}
    key = {"config": config.key(), "prepared": meta["fingerprint"], "base_model": str(base_model)}
    record_path, checkpoint_path = out / "fit.json", out / "checkpoint.pt"
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else None
    if record is not None and record.get("key") != key:
        raise FitError(f"{out} holds a run with other settings or data ({record_path}); "
                       "give a new work directory, or delete this one to start over")
    if record is not None and record.get("done") and not _extends(record, config):
        log(f"fit: {out} is complete (best epoch {record['best_epoch']}, validation macro-F1 "
            f"{record['best_score']:.4f}); nothing to do")
        return record

    device = choose_device(config.device)
    precision = choose_precision(config.precision, device)
    seed_everything(config.seed)
    train_rows = np.flatnonzero(split == SPLITS["train"])
    if soft is not None:  # unlabelled appeals learn from their soft targets
        train_rows = np.flatnonzero((split == SPLITS["train"]) | (split == SPLITS["unlabelled"]))
    val_rows = np.flatnonzero(split == SPLITS["validation"])
    if len(train_rows) == 0:
        raise FitError("the training split is empty")
    lengths = np.array([len(s) for s in sequences])
    model = load_base(base_model, heads, layers=config.layers, dropout=config.dropout).to(device)
    encoder_config = model.encoder.config
    checkpointing = choose_checkpointing(config.checkpointing, config.batch_size, int(lengths.max()),
                                         encoder_config.hidden_size, encoder_config.num_hidden_layers)
    if checkpointing:
        enable_checkpointing(model.encoder)
    losses = {name: torch.nn.CrossEntropyLoss(weight=class_weights(labels[name][train_rows], size).to(device),
                                              ignore_index=-1, label_smoothing=config.label_smoothing)
              for name, size in heads.items()}
    optimizer = torch.optim.AdamW(parameter_groups(model, config))
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total_steps), total_steps)

    state = {"epoch": 0, "batch": 0, "global_step": 0, "best_score": -1.0, "best_epoch": None, "bad_epochs": 0,
             "history": [], "seconds": 0.0, "loss_sum": 0.0, "loss_steps": 0}
    if checkpoint_path.exists() and record is not None:
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        torch.set_rng_state(saved["rng"]["torch"])
        np.random.set_state(saved["rng"]["numpy"])
        random.setstate(saved["rng"]["python"])
        if device.type == "cuda" and saved["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(saved["rng"]["cuda"])
        log(f"fit: resuming at epoch {state['epoch'] + 1}, batch {state['batch']} (step {state['global_step']})")

    record = {"key": key, "config": asdict(config), "device": str(device), "precision": precision,
              "checkpointing": checkpointing,
              "train": int(len(train_rows)),
              "validation": int(len(val_rows)), "heads": meta["heads"], "done": False, **state}
    _write_json(record_path, record)

    last_save = [time.monotonic()]

    def checkpoint() -> None:
        last_save[0] = time.monotonic()
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
               "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "state": state, "rng": rng}, checkpoint_path)
        record.update(state)
        _write_json(record_path, record)

    started = time.perf_counter() - state["seconds"]
    bar = tqdm(total=total_steps, initial=state["global_step"], unit="step", desc="fine-tune", disable=not progress,
               mininterval=0.5 if sys.stderr.isatty() else 30, file=sys.stderr)
    stopped_early = False
    try:
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            batches = epoch_batches(train_rows, lengths, config.batch_size, config.seed, epoch)
            model.train()
            for index in range(state["batch"], len(batches)):
                if config.max_steps is not None and state["global_step"] >= config.max_steps:
                    break
                rows = batches[index]
                ids, mask = collate(sequences, rows, meta["pad_id"], 8 if device.type == "cuda" else 1)
                ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
                with autocast(device, precision):
                    logits = model(ids, mask)
                loss = batch_loss(model.head_names, logits, labels, rows, losses, soft, config.distill, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                state["batch"], state["global_step"] = index + 1, state["global_step"] + 1
                value = float(loss.item())
                state["loss_sum"] += value
                state["loss_steps"] += 1
                state["seconds"] = time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", refresh=False)
                if (config.save_every and state["global_step"] % config.save_every == 0) or (
                        config.save_minutes and time.monotonic() - last_save[0] >= 60 * config.save_minutes):
                    checkpoint()
            if config.max_steps is not None and state["global_step"] >= config.max_steps and state["batch"] < len(batches):
                score = _validate(model, sequences, val_rows, labels, meta, device, precision)
                _improve(state, score, epoch, model, out)
                checkpoint()
                break
            score = _validate(model, sequences, val_rows, labels, meta, device, precision)
            improved = _improve(state, score, epoch, model, out)
            state["history"].append({"epoch": epoch + 1, "step": state["global_step"], "validation_macro_f1": score,
                                     "train_loss": state["loss_sum"] / max(1, state["loss_steps"]),
                                     "seconds": round(time.perf_counter() - started, 1)})
            state["loss_sum"], state["loss_steps"] = 0.0, 0
            log(f"fit: epoch {epoch + 1}/{config.epochs}: validation category macro-F1 {score:.4f}"
                + (" (best)" if improved else f" (best {state['best_score']:.4f} at epoch {state['best_epoch']})"))
            state["epoch"], state["batch"] = epoch + 1, 0
            state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
            state["seconds"] = time.perf_counter() - started
            checkpoint()
            if state["bad_epochs"] >= config.patience:
                stopped_early = True
                log(f"fit: stopping early: {config.patience} epoch(s) without a better validation macro-F1")
                break
    finally:
        bar.close()
    at_limit = config.max_steps is not None and state["global_step"] >= config.max_steps
    reason = "early_stop" if stopped_early else "epochs" if state["epoch"] >= config.epochs else \
        "max_steps" if at_limit else None
    record.update(state)
    record.update({"done": reason is not None, "reason": reason, "stopped_early": stopped_early,
                   "seconds": round(time.perf_counter() - started, 1)})
    _write_json(record_path, record)
    if reason in ("early_stop", "epochs") and checkpoint_path.exists():
        checkpoint_path.unlink()  # optimizer state is three times the model; the best weights are kept
    return record


def _extends(record: dict, config: FitConfig) -> bool:
    """A run stopped by --max-steps (its checkpoint kept) goes on when asked for more steps, or no limit."""
    if record.get("reason") == "max_steps":
        return config.max_steps is None or config.max_steps > record["global_step"]
    return False


def _validate(model, sequences, val_rows, labels, meta, device, precision) -> float:
    rows = val_rows if len(val_rows) else np.flatnonzero(labels["category"] >= 0)[:256]
    logits = predict_logits(model, sequences, rows, meta["pad_id"], device)["category"]
    model.train()
    return macro_f1(labels["category"][rows], logits.argmax(axis=1))


def _improve(state: dict, score: float, epoch: int, model, out: Path) -> bool:
    if score > state["best_score"]:
        state["best_score"], state["best_epoch"] = score, epoch + 1
        save_model(model, out / "best")
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune on a prepared directory (see the module docstring).")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    for name, default in asdict(FitConfig()).items():
        kind = type(default) if default is not None else int
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default)
    args = parser.parse_args(argv)
    config = FitConfig(**{k: getattr(args, k) for k in asdict(FitConfig())})
    try:
        record = fit(args.prepared, args.base_model, args.out, config)
    except (FitError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record[k] for k in ("best_epoch", "best_score", "global_step", "seconds", "done")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
