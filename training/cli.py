"""The training commands of ``jiesu``: ``train``, ``evaluate``, ``encoder`` and ``annotations``.

``register`` is the ``jiesu.commands`` entry point: ``serving.cli`` calls it with its app and its error
guard, so these commands answer bad input as every other command does (one line, exit code 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from serving.cli import DataDirOpt, ProfileOpt, CliError, _taxonomy
from taxonomy import DEFAULT_PROFILE


def register(app: typer.Typer, guard) -> None:
    @app.command()
    @guard
    def train(
        out: Annotated[Path, typer.Option("--out", help="Directory to write the model bundle to.")],
        data: Annotated[Optional[list[Path]], typer.Option(
            "--data", help="Labelled appeals (CSV, JSONL or Parquet) or annotation files (ids and labels, texts "
                           "joined from the data directory); repeat for more files. `default` names the default "
                           "set: the public labelled file plus data/annotations/*.jsonl. Without --data: the "
                           "default set.")] = None,
        kind: Annotated[str, typer.Option(help="Model kind: linear (fast), transformer (fine-tuned encoder, ONNX int8) "
                                               "or ensemble (both, probabilities averaged).")] = "linear",
        seed: Annotated[int, typer.Option(help="Seed for the split and the model.")] = 13,
        validation: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
        test: Annotated[Optional[float], typer.Option(
            help="Test fraction of the rows outside the annotations' fixed test split (default: 0.1 where the data "
                 "has no fixed test split, else 0).")] = None,
        C: Annotated[float, typer.Option("--C", help="Inverse regularisation of the linear SVM.")] = 1.0,
        base_model: Annotated[Optional[str], typer.Option(
            "--base-model", help="Transformer kinds: a local BERT-family checkpoint directory (or a hub id where a hub "
                                 "is reachable); `jiesu encoder import-e5` builds one offline.")] = None,
        work_dir: Annotated[Optional[Path], typer.Option(
            "--work-dir", help="Transformer kinds: where tokenized data, checkpoints and ONNX graphs are kept; the same "
                               "command resumes from it. Default: <out>.work")] = None,
        epochs: Annotated[int, typer.Option(min=1, help="Transformer kinds: most epochs.")] = 5,
        batch_size: Annotated[int, typer.Option(min=1, help="Transformer kinds: appeals per step.")] = 32,
        lr: Annotated[float, typer.Option(min=0.0, help="Transformer kinds: encoder learning rate.")] = 5e-5,
        max_length: Annotated[int, typer.Option(min=8, max=4096, help="Transformer kinds: tokens read per appeal.")] = 256,
        head_fraction: Annotated[float, typer.Option(
            min=0.01, max=1.0, help="Transformer kinds: share of a long body's budget taken from its start (the rest "
                                    "from its end); 1 keeps only the start.")] = 0.75,
        layers: Annotated[Optional[int], typer.Option(min=1, help="Transformer kinds: keep the first N encoder layers.")] = None,
        layer_decay: Annotated[float, typer.Option(
            min=0.01, max=1.0, help="Transformer kinds: each layer below the top learns this factor slower (1 = off).")] = 1.0,
        label_smoothing: Annotated[float, typer.Option(
            min=0.0, max=0.5, help="Transformer kinds: label smoothing of the heads' losses.")] = 0.0,
        distill: Annotated[float, typer.Option(
            help="Transformer kinds: weight (0–1) of the linear model's soft targets in the category loss; 0 = off. "
                 "Training appeals get out-of-fold targets.")] = 0.0,
        unlabelled: Annotated[Optional[list[Path]], typer.Option(
            "--unlabelled", help="Transformer kinds, with --distill: appeals without labels (title, text) that the "
                                 "encoder learns from the linear model's probabilities; repeat for more files.")] = None,
        device: Annotated[str, typer.Option(help="Transformer kinds: auto, cpu or cuda.")] = "auto",
        precision: Annotated[str, typer.Option(
            help="Transformer kinds: auto (bfloat16 autocast on a GPU or a CPU with native bfloat16, else fp32), "
                 "bf16 or fp32.")] = "auto",
        checkpointing: Annotated[str, typer.Option(
            help="Transformer kinds: activation checkpointing, auto (on where the activations would take more than a "
                 "quarter of this machine's memory), on or off.")] = "auto",
        patience: Annotated[int, typer.Option(min=1, help="Transformer kinds: epochs without a better validation "
                                                           "macro-F1 before stopping.")] = 2,
        max_steps: Annotated[Optional[int], typer.Option(min=1, help="Transformer kinds: stop after N steps in all.")] = None,
        prepare_only: Annotated[bool, typer.Option(
            "--prepare-only", help="Transformer kinds: tokenize into the work directory, print the command that "
                                   "fine-tunes from it (e.g. on a GPU machine) and stop.")] = False,
        profile: ProfileOpt = DEFAULT_PROFILE,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Train a category model (and, for transformer kinds, urgency and appeal-type heads) and write a bundle
        with its evaluation report."""
        from training.data import DataError
        from training.train import KINDS, TrainConfig
        from training.train import train as run_training

        if kind not in KINDS:
            raise CliError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind != "linear" and not base_model:
            raise CliError(f"--kind {kind} needs --base-model DIR (`jiesu encoder import-e5 --out DIR` builds one)")
        if kind != "linear" and device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise CliError(f"--device must be auto, cpu or cuda, got {device!r}")
        if precision not in ("auto", "bf16", "fp32"):
            raise CliError(f"--precision must be auto, bf16 or fp32, got {precision!r}")
        if checkpointing not in ("auto", "on", "off"):
            raise CliError(f"--checkpointing must be auto, on or off, got {checkpointing!r}")
        taxonomy = _taxonomy(profile, data_dir)
        config = TrainConfig(data=list(data or ["default"]), data_dir=data_dir, out=out, kind=kind, seed=seed, validation=validation, test=test, C=C,
                             base_model=base_model, work_dir=work_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                             max_length=max_length, head_fraction=head_fraction, layers=layers, device=device,
                             precision=precision, checkpointing=checkpointing, layer_decay=layer_decay,
                             label_smoothing=label_smoothing,
                             distill=distill, unlabelled=list(unlabelled or []),
                             patience=patience, max_steps=max_steps, prepare_only=prepare_only)
        try:
            result = run_training(config, taxonomy, log=lambda m: typer.echo(m, err=True))
        except DataError as exc:
            raise CliError(str(exc)) from None
        except ModuleNotFoundError as exc:
            raise CliError(f"--kind {kind} needs {exc.name}: install jiesu[transformer]") from None
        except OSError as exc:  # transformers: a base model that is neither a checkpoint directory nor a reachable hub id
            raise CliError(f"--base-model {base_model}: {str(exc).splitlines()[0]}") from None
        if result.bundle is None:
            return
        shown = result.metrics.get("test") or result.metrics.get("validation")
        summary = {"bundle": str(result.bundle), "seconds": round(result.seconds, 1), "split": result.split_sizes}
        if shown:
            summary.update({k: round(shown[k], 4) for k in ("macro_f1", "accuracy", "ece")})
        typer.echo(json.dumps(summary, ensure_ascii=False))


    @app.command()
    @guard
    def evaluate(
        model: Annotated[Path, typer.Option("--model", help="Model bundle directory.")],
        data: Annotated[list[Path], typer.Option(
            "--data", help="Labelled appeals or annotation files to evaluate on (`default` for the default set; "
                           "data/annotations/test.jsonl is the blind test split).")],
        out: Annotated[Optional[Path], typer.Option("--out", help="Write report.json/.md, report_routing.json and the confusion matrix PNG here.")] = None,
        profile: ProfileOpt = DEFAULT_PROFILE,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Recompute a bundle's evaluation report on any labelled file: per level of the tree, department,
        company co-dispatch, urgency, type and the auto-dispatch curve."""
        from training.data import DataError
        from training.evaluate import evaluate_bundle

        try:
            metrics = evaluate_bundle(model, list(data), _taxonomy(profile, data_dir), out, data_dir)
        except DataError as exc:
            raise CliError(str(exc)) from None
        per_class = {k: round(v["f1"], 4) for k, v in metrics["per_class"].items()}
        typer.echo(json.dumps({"n": metrics["n"], "macro_f1": round(metrics["macro_f1"], 4),
                               "accuracy": round(metrics["accuracy"], 4), "ece": round(metrics["ece"], 4),
                               "f1_per_class": per_class, "routing": _routing_line(metrics["routing_report"]),
                               **({"heads": {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                                             for name, m in metrics["heads"].items()}} if "heads" in metrics else {})},
                              ensure_ascii=False))


    @app.command("encoder", add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def encoder(ctx: typer.Context) -> None:
        """Import pretrained encoders for the transformer router (`jiesu encoder import-e5 --help`)."""
        # The command group lives in training, which the service never loads: it is imported only when this
        # command runs, and it gets the arguments (--help too) as given, so its options are defined once.
        from training.encoder.cli import encoder_app

        encoder_app(args=ctx.args, prog_name="jiesu encoder")




def _routing_line(routing: dict) -> dict:
    """The headline routing numbers, rounded, for the one line ``evaluate`` prints."""
    out = {}
    for key, value in routing.items():
        if isinstance(value, dict):
            out[key] = {k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()
                        if k not in ("curve",) and not isinstance(v, (dict, list))}
    return out
