"""``jiesu train --kind transformer``: prepare → fit → export → calibrate → write and evaluate the bundle.

Everything between runs lives in the work directory (``--work-dir``, default ``<out>.work``):
``prepared/`` (token ids and labels), ``fit/`` (checkpoint, best weights, history) and ``onnx/`` (the
fp32 and int8 graphs). Running the same command again resumes a stopped fine-tune, or goes straight
to export when it has finished — also when the fit step ran elsewhere (a GPU machine, with
``python -m training.transformer.fit``) and its ``fit/`` directory was copied back.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serving.model.bundle import Manifest
from serving.model.encoding import TextEncoding, special_ids
from serving.model.linear import softmax
from serving.model.transformer import MODEL_FILE, TOKENIZER_FILE, TransformerModel
from taxonomy import Taxonomy
from training.evaluate import compute_metrics
from training.linear import fit_temperature, fit_temperature_within
from training.transformer.fit import SPLITS, FitConfig, fit, read_prepared
from training.transformer.prepare import load_tokenizer, prepare


@dataclass
class TransformerOptions:
    base_model: str
    work_dir: Path
    fit: FitConfig
    max_length: int = 256
    title_tokens: int = 48
    head_fraction: float = 0.75
    unlabelled: tuple[Path, ...] = ()  # appeals without labels, learnt from the teacher's soft targets
    teacher_folds: int = 5


@dataclass
class BuiltTransformer:
    manifest_data: dict
    metrics: dict  # {"validation": {...}, "test": {...}} for the category head
    head_metrics: dict  # {"urgency": {...}, "appeal_type": {...}} on the test split
    validation_probabilities: np.ndarray  # category, rows of the validation split in frame order
    report_extra: dict
    validation_heads: dict | None = None  # every head's validation probabilities, same rows
    head_counts: dict | None = None  # head -> label -> training rows


def prepare_work(frame: pd.DataFrame, categories: list[str], taxonomy: Taxonomy, options: TransformerOptions,
                 log=print):
    """Tokenize and label into ``<work>/prepared`` (the same data and settings give the same files)."""
    work = Path(options.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log(f"transformer: work directory {work} (run the same command again to resume)")
    tokenizer = load_tokenizer(options.base_model)
    encoding = TextEncoding(max_length=options.max_length, title_tokens=options.title_tokens,
                            head_fraction=options.head_fraction, **special_ids(tokenizer))
    soft, extra = None, None
    if options.fit.distill > 0:
        frame, soft, extra = _with_soft_targets(frame, categories, options, log)
    meta = prepare(frame, taxonomy, categories, tokenizer, encoding, work / "prepared", extra, soft)
    log(f"transformer: {meta['rows']} appeals tokenized, median {meta['tokens']['p50']:.0f} tokens, "
        f"{meta['tokens']['at_max_length']:.1%} cut to {encoding.max_length}")
    return tokenizer, encoding, meta


def _with_soft_targets(frame: pd.DataFrame, categories: list[str], options: TransformerOptions, log):
    """The labelled frame plus the kept unlabelled appeals, and the linear teacher's soft targets for both."""
    from training.data import read_unlabelled
    from training.transformer.teacher import linear_soft_targets

    unlabelled = pd.concat([read_unlabelled(p) for p in options.unlabelled], ignore_index=True) \
        if options.unlabelled else None
    targets = linear_soft_targets(frame, categories, unlabelled, folds=options.teacher_folds, seed=options.fit.seed,
                                  log=log)
    extra = pd.DataFrame({"title": targets.unlabelled["title"], "text": targets.unlabelled["text"],
                          "category": "", "category_path": "", "urgency": -1, "appeal_type": "",
                          "split": "unlabelled"})
    combined = pd.concat([frame, extra], ignore_index=True)
    soft = np.zeros((len(combined), len(categories)), dtype=np.float32)
    soft[np.flatnonzero(frame["split"].to_numpy() == "train")] = targets.train
    soft[len(frame):] = targets.unlabelled_probabilities
    record = {**targets.record, "weight": options.fit.distill,
              "unlabelled_files": [str(p) for p in options.unlabelled]}
    return combined, soft, {"distillation": record}


def fit_command(options: TransformerOptions) -> str:
    """The command that runs the fit step by itself (on another machine, from a copy of the work directory)."""
    work = Path(options.work_dir)
    args = [f"--prepared {work / 'prepared'}", f"--base-model {options.base_model}", f"--out {work / 'fit'}"]
    defaults = FitConfig()
    for name, value in vars(options.fit).items():
        if value != getattr(defaults, name) and value is not None:
            args.append(f"--{name.replace('_', '-')} {value}")
    return "python -m training.transformer.fit " + " ".join(args)


CALIBRATION_APPEALS = 256  # training appeals that set the int8 smoothing scales


def _rows(split: np.ndarray, name: str) -> np.ndarray:
    return np.flatnonzero(split == SPLITS[name])


def build_transformer(staging: Path, frame: pd.DataFrame, categories: list[str], taxonomy: Taxonomy,
                      options: TransformerOptions, level: int, log=print, progress: bool = True) -> BuiltTransformer:
    """Fine-tune (or resume) and write a complete transformer bundle's files into ``staging``."""
    from training.transformer.export import export_all
    from training.transformer.model import load_model

    work = Path(options.work_dir)
    tokenizer, encoding, meta = prepare_work(frame, categories, taxonomy, options, log)
    record = fit(work / "prepared", options.base_model, work / "fit", options.fit, log=log, progress=progress)
    if not record.get("done"):
        raise RuntimeError(f"the fine-tune in {work / 'fit'} has not finished; run the command again to resume it")

    model = load_model(work / "fit" / "best")
    _, sequences, split, labels = read_prepared(work / "prepared")
    val_rows, test_rows = _rows(split, "validation"), _rows(split, "test")
    check_rows = val_rows if len(val_rows) else _rows(split, "train")[:200]
    train_rows = _rows(split, "train")  # evenly spaced: files are often sorted by category
    calibration_rows = train_rows[::max(1, len(train_rows) // CALIBRATION_APPEALS)][:CALIBRATION_APPEALS]
    exported = export_all(model, work / "onnx", encoding.pad_id, [sequences[r].tolist() for r in check_rows],
                          [sequences[r].tolist() for r in calibration_rows] or None, log=log)
    shutil.copyfile(work / "onnx" / f"model_{exported['shipped']}.onnx", staging / MODEL_FILE)
    tokenizer.save(str(staging / TOKENIZER_FILE))

    heads = {name: {"labels": names} for name, names in meta["heads"].items()}
    heads["category"]["level"] = level
    for name, counts in meta["label_sources"].items():
        heads[name]["label_source"] = counts
    manifest_data = {
        "kind": "transformer",
        "heads": heads,
        "preprocessing": {"strip_patterns": list(encoding.strip_patterns), "max_chars": None, "title_repeat": 1},
        "encoding": encoding.to_dict(),
        "encoder": _encoder_record(options, model),
        "onnx": {k: exported[k] for k in ("shipped", "why", "sizes_mb", "fused_operators", "parity", "appeals",
                                           "quantization_plans", "smoothing", "exported_on",
                                           "int8_weights")},
        "fine_tune": {k: record[k] for k in ("config", "device", "best_epoch", "best_score", "history",
                                              "stopped_early", "seconds", "global_step")},
    }
    if "distillation" in meta:
        manifest_data["distillation"] = meta["distillation"]
    # Temperatures from the shipped graph's validation logits, so calibration matches what is served.
    served = TransformerModel(Manifest(staging, manifest_data), threads=None)
    val_logits = served.logits([sequences[r].tolist() for r in val_rows]) if len(val_rows) else None
    for name in heads:
        known = labels[name][val_rows] >= 0 if val_logits is not None else np.zeros(0, dtype=bool)
        if known.any() and len(set(labels[name][val_rows][known].tolist())) > 1:
            heads[name]["temperature"] = _temperature(name, meta["heads"][name], val_logits[name][known],
                                                      labels[name][val_rows][known])
        else:
            heads[name]["temperature"] = 1.0
    served.temperatures = {name: heads[name]["temperature"] for name in heads}
    validation_heads = {name: softmax(val_logits[name], heads[name]["temperature"]) for name in heads} \
        if val_logits is not None else None
    train_rows_all = _rows(split, "train")
    head_counts = {name: {label: int((labels[name][train_rows_all] == i).sum()) for i, label in enumerate(names)}
                   for name, names in meta["heads"].items()}

    metrics, head_metrics = {}, {}
    val_probabilities = softmax(val_logits["category"], heads["category"]["temperature"]) if val_logits is not None \
        else np.zeros((0, len(categories)))
    if len(val_rows):
        metrics["validation"] = compute_metrics(categories, [categories[i] for i in labels["category"][val_rows]],
                                                val_probabilities)
    if len(test_rows):
        test = frame.iloc[test_rows]
        probabilities = served.predict_all(list(test["title"]), list(test["text"]))  # through the serving path
        metrics["test"] = compute_metrics(categories, list(test["category"]), probabilities["category"])
        for name in heads:
            if name == "category":
                continue
            names, known = meta["heads"][name], labels[name][test_rows] >= 0
            if known.any():
                head_metrics[name] = compute_metrics(names, [names[i] for i in labels[name][test_rows][known]],
                                                     probabilities[name][known])
    extra = {"label_sources": meta["label_sources"], "tokens": meta["tokens"], "onnx": exported,
             "fine_tune": manifest_data["fine_tune"], "distillation": meta.get("distillation")}
    return BuiltTransformer(manifest_data, metrics, head_metrics, val_probabilities, extra, validation_heads,
                            head_counts)


def _temperature(head: str, names: list[str], logits: np.ndarray, y: np.ndarray) -> float:
    """A deeper category head is read within its parent, so its temperature is fitted on that conditional."""
    if head not in ("category_l2", "category_l3"):
        return fit_temperature(logits.astype(np.float64), y)
    parents = {i: label.rsplit("/", 1)[0] for i, label in enumerate(names)}
    by_parent: dict[str, list[int]] = {}
    for i, parent in parents.items():
        by_parent.setdefault(parent, []).append(i)
    siblings = [np.array(by_parent[parents[int(t)]]) for t in y]
    keep = [k for k, sib in enumerate(siblings) if len(sib) > 1]
    if not keep:
        return 1.0
    return fit_temperature_within(logits[keep].astype(np.float64), y[keep], [siblings[k] for k in keep])


def _encoder_record(options: TransformerOptions, model) -> dict:
    config = model.encoder.config
    record = {"base_model": str(options.base_model), "layers": config.num_hidden_layers,
              "hidden_size": config.hidden_size, "vocab_size": config.vocab_size,
              "parameters": int(sum(p.numel() for p in model.parameters()))}
    origin = Path(str(options.base_model)) / "jiesu_encoder.json"
    if origin.exists():
        record["origin"] = json.loads(origin.read_text(encoding="utf-8"))
    return record


def heads_markdown(head_metrics: dict, extra: dict) -> str:
    """The part of report.md about the urgency and appeal-type heads, the export and the fine-tune."""
    lines = ["", "## Urgency, appeal-type and deeper category heads", ""]
    sources = extra["label_sources"]
    lines.append("These heads learn the labels people gave (annotations, reviewer corrections, the team's sample), "
                 "each from the rows that carry one, and are scored here alone against the same kind of labels on "
                 "the test split; how the service decides with them is in the routing tables.")
    lines.append("")
    for name, m in head_metrics.items():
        origin = f"{sources[name]['data']} labelled appeals" if name in sources else "labels from the data"
        lines.append(f"- {name}: {origin}; test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
                     f"({m['n']} appeals)")
    onnx = extra["onnx"]
    lines += ["", "## Export (ONNX)", "", f"- shipped: {onnx['shipped']} — {onnx['why']}",
              f"- sizes: fp32 {onnx['sizes_mb']['fp32']} MB, int8 {onnx['sizes_mb']['int8']} MB",
              f"- fused operators: {json.dumps(onnx['fused_operators'], ensure_ascii=False)}",
              f"- exported on: {onnx.get('exported_on', {}).get('model', '?')} "
              f"({', '.join(onnx.get('exported_on', {}).get('int8_isa', [])) or 'no AVX2'}); int8 weights stored "
              f"as {onnx.get('int8_weights', 'int8')}; parity holds for CPUs of that kind", "",
              f"Parity with PyTorch on {onnx['appeals']} validation appeals:", "",
              "| graph | head | top-1 agreement | max prob diff |", "|---|---|---|---|"]
    for graph, heads in onnx["parity"].items():
        for head, p in heads.items():
            lines.append(f"| {graph} | {head} | {p['top1_agreement']:.4f} | {p['max_prob_diff']:.4f} |")
    if onnx.get("quantization_plans"):
        lines += ["", "int8 plans tried in turn (the first whose category agreement, the worse of batched "
                  "and one at a time, is ≥ 99.5% ships):", "",
                  "| plan | category top-1 agreement (in served batches / one at a time) | max prob diff "
                  "| batch-1 p50 ms (fp32) |", "|---|---|---|---|"]
        lines += [f"| {t['plan']} | {t['category_top1_agreement']:.4f}"
                  + (f" ({t['agreement_batched']:.4f} in {t['served_batch']}s / {t['agreement_alone']:.4f})"
                     if "agreement_alone" in t else "")
                  + f" | {t['max_prob_diff']:.4f} | "
                  + (f"{t['batch1_ms']:.1f} ({t['fp32_batch1_ms']:.1f}){' — ' + t['refused'] if 'refused' in t else ''}"
                     if "batch1_ms" in t else "—") + " |"
                  for t in onnx["quantization_plans"]]
    if onnx.get("smoothing"):
        sites = list(dict.fromkeys(row.get("site", "ffn_output") for row in onnx["smoothing"]))
        lines += ["", "Smoothing of each MatMul input (strength, simulated int8 error before → after; "
                  "none = left alone):", "", "| layer | " + " | ".join(sites) + " |", "|---|" + "---|" * len(sites)]
        by_layer: dict[int, dict] = {}
        for row in onnx["smoothing"]:
            by_layer.setdefault(row["layer"], {})[row.get("site", "ffn_output")] = row
        for layer, row in sorted(by_layer.items()):
            lines.append(f"| {layer} | " + " | ".join(
                f"{r['alpha'] if r['alpha'] is not None else 'none'}, {r['int8_error_unsmoothed']:.1e} → "
                f"{r['int8_error']:.1e}" if (r := row.get(site)) else "—" for site in sites) + " |")
    ft = extra["fine_tune"]
    lines += ["", "## Fine-tune", "", f"- device: {ft['device']}; {ft['global_step']} steps; "
              f"{ft['seconds']} s; best epoch {ft['best_epoch']} (validation macro-F1 {ft['best_score']:.4f})"
              + ("; stopped early" if ft.get("stopped_early") else ""),
              f"- settings: {json.dumps(ft['config'], ensure_ascii=False)}",
              f"- tokens per appeal: median {extra['tokens']['p50']:.0f}, "
              f"{extra['tokens']['at_max_length']:.1%} at the maximum length"]
    distill = extra.get("distillation")
    if distill:
        kept = distill["unlabelled"]
        lines += [f"- distilled from the linear model (weight {distill['weight']}): its out-of-fold probabilities "
                  f"on the training appeals ({distill['folds']} folds; out-of-fold macro-F1 "
                  f"{distill['out_of_fold_train']['macro_f1']:.4f}) and its probabilities on {kept['kept']} "
                  f"unlabelled appeals ({kept['given']} given, {kept['dropped_repeating_labelled']} dropped as "
                  f"repeats of labelled ones, {kept['dropped_repeating_each_other']} as repeats of each other)"]
    return "\n".join(lines) + "\n"
