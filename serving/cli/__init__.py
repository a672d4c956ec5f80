"""``jiesu``: the command line. Every command answers bad input with one line on stderr and exit code 2.

Training commands import ``training`` only when they run; the serving path never does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from serving.bundle import BundleError
from serving.appeals import AppealInput, AppealInputError, JsonlError, read_jsonl
from taxonomy import DEFAULT_PROFILE, TaxonomyError, load_taxonomy

app = typer.Typer(help="jiesu (接诉): classify, dispatch, track and score city hotline appeals.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
taxonomy_app = typer.Typer(help="Inspect and check the taxonomy (categories, urgency, units).", no_args_is_help=True)
app.add_typer(taxonomy_app, name="taxonomy")

EXIT_BAD_INPUT = 2
BATCH = 4096  # appeals per write: large enough to spread over the worker processes
ProfileOpt = Annotated[str, typer.Option("--profile", help="Taxonomy profile name or directory.")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Shared data directory (JIESU_DATA_DIR).")]


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


def fail(message: str) -> None:
    typer.echo(f"jiesu: error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _guard(func):
    """Turn the domain's errors into one line and exit code 2, never a traceback."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except (CliError, TaxonomyError, BundleError, AppealInputError, FileNotFoundError, FileExistsError,
                PermissionError, IsADirectoryError, ValueError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            typer.echo("jiesu: interrupted", err=True)
            raise typer.Exit(130)

    return wrapper


def _taxonomy(profile: str, data_dir: Optional[Path]):
    return load_taxonomy(profile, data_dir=data_dir)


@app.command()
@_guard
def train(
    data: Annotated[list[Path], typer.Option("--data", help="Labelled appeals (CSV, JSONL or Parquet); repeat for more files.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model bundle to.")],
    kind: Annotated[str, typer.Option(help="Model kind: linear (fast), transformer (fine-tuned encoder, ONNX int8) "
                                           "or ensemble (both, probabilities averaged).")] = "linear",
    seed: Annotated[int, typer.Option(help="Seed for the split and the model.")] = 13,
    validation: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
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
    config = TrainConfig(data=list(data), out=out, kind=kind, seed=seed, validation=validation, test=test, C=C,
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
@_guard
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Model bundle directory.")],
    data: Annotated[list[Path], typer.Option("--data", help="Labelled appeals to evaluate on.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write report.json/.md and the confusion matrix PNG here.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    data_dir: DataDirOpt = None,
) -> None:
    """Recompute a bundle's evaluation report on any labelled file."""
    from training.data import DataError
    from training.evaluate import evaluate_bundle

    try:
        metrics = evaluate_bundle(model, list(data), _taxonomy(profile, data_dir), out)
    except DataError as exc:
        raise CliError(str(exc)) from None
    per_class = {k: round(v["f1"], 4) for k, v in metrics["per_class"].items()}
    typer.echo(json.dumps({"n": metrics["n"], "macro_f1": round(metrics["macro_f1"], 4),
                           "accuracy": round(metrics["accuracy"], 4), "ece": round(metrics["ece"], 4),
                           "f1_per_class": per_class,
                           **({"heads": {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                                         for name, m in metrics["heads"].items()}} if "heads" in metrics else {})},
                          ensure_ascii=False))


def read_predict_input(path: Path) -> list[AppealInput]:
    """Lines of ``{"id", "title", "text", "address"?}``; the first bad line stops the run."""
    if not path.exists():
        raise CliError(f"{path}: file not found")
    try:
        rows = read_jsonl(path)
    except JsonlError as exc:
        raise CliError(f"{path}: {exc}") from None
    appeals = []
    for number, obj in rows:
        if "text" not in obj:
            raise CliError(f"{path}: line {number}: text: missing")
        for key in ("text", "title", "address"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise CliError(f"{path}: line {number}: {key}: must be a string")
        appeal_id = obj.get("id", number)
        appeals.append(AppealInput(text=obj["text"] or "", title=obj.get("title") or "",
                                   id=str(appeal_id) if appeal_id is not None else None,
                                   address=obj.get("address")))
    return appeals


@app.command()
@_guard
def predict(
    model: Annotated[Path, typer.Option("--model", help="Model bundle directory.")],
    input: Annotated[Path, typer.Option("--input", help="JSONL with id, title (optional), text.")],
    output: Annotated[Path, typer.Option("--output", help="JSONL to write, one line per input line.")],
    workers: Annotated[Optional[int], typer.Option(help="Processes to use (default: every core).", min=1)] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    data_dir: DataDirOpt = None,
) -> None:
    """Classify appeals: category, urgency, appeal type, district and street."""
    from serving.appeals import validate_appeal
    from serving.batch import predict_many
    from serving.predictor import Predictor

    appeals = read_predict_input(input)
    for number, appeal in enumerate(appeals, start=1):
        try:
            validate_appeal(appeal)
        except AppealInputError as exc:
            raise CliError(f"{input}: appeal {appeal.id or number}: {exc.field}: {exc.reason}") from None
    predictor = Predictor(model, _taxonomy(profile, data_dir))
    started = time.perf_counter()
    tmp = output.with_name(output.name + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        for start in range(0, len(appeals), BATCH):
            for prediction in predict_many(predictor, appeals[start:start + BATCH], workers=workers):
                fh.write(json.dumps(prediction.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(output)
    seconds = time.perf_counter() - started
    rate = len(appeals) / seconds if seconds > 0 else 0.0
    typer.echo(f"predicted {len(appeals)} appeals in {seconds:.2f}s ({rate:.0f}/s) -> {output}", err=True)


@taxonomy_app.command("check")
@_guard
def taxonomy_check(profile: ProfileOpt = DEFAULT_PROFILE, data_dir: DataDirOpt = None) -> None:
    """Load and cross-check a profile; print what it holds."""
    tx = _taxonomy(profile, data_dir)
    counts = {f"level{n}": len(tx.categories.level(n)) for n in (1, 2, 3)}
    units = {kind: len(tx.units.of_kind(kind)) for kind in ("street", "district", "department", "company")}
    typer.echo(json.dumps({"profile": tx.name, "categories": counts, "units": units,
                           "urgency_levels": [f"{lvl.level} {lvl.name}" for lvl in tx.urgency.levels],
                           "appeal_types": tx.appeal_types.names, "streets_file": str(tx.streets_file)},
                          ensure_ascii=False))


@taxonomy_app.command("places")
@_guard
def taxonomy_places(
    text: Annotated[str, typer.Argument(help="Appeal text to find the district and street in.")],
    address: Annotated[Optional[str], typer.Option(help="Address, when known.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    data_dir: DataDirOpt = None,
) -> None:
    """Resolve the district and street an appeal names."""
    from taxonomy.places import PlaceResolver

    tx = _taxonomy(profile, data_dir)
    match = PlaceResolver(tx.units, tx.street_aliases, tx.not_place_names).resolve(text, address)
    typer.echo(json.dumps({"district": match.district.name if match.district else None,
                           "street": match.street.name if match.street else None,
                           "evidence": list(match.evidence), "ambiguous": list(match.ambiguous)}, ensure_ascii=False))


from serving.cli_service import register  # noqa: E402 - after _guard, which it wraps commands with

@app.command("encoder", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def encoder(ctx: typer.Context) -> None:
    """Import pretrained encoders for the transformer router (`jiesu encoder import-e5 --help`)."""
    # The command group lives in training, which the service never loads: it is imported only when this
    # command runs, and it gets the arguments (--help too) as given, so its options are defined once.
    from training.encoder.cli import encoder_app

    encoder_app(args=ctx.args, prog_name="jiesu encoder")


register(app, _guard)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
