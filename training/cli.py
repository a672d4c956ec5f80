"""The training commands of ``jiesu``: ``train``, ``evaluate``, ``encoder`` and ``annotations``.

``register`` is the ``jiesu.commands`` entry point: ``serving.cli`` calls it with its app and its error
guard, so these commands answer bad input as every other command does (one line, exit code 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from serving.cli import CliError, DataDirOpt, ProfileOpt, _taxonomy
from taxonomy import DEFAULT_PROFILE
from training.options import TrainConfig, cli_signature


def register(app: typer.Typer, guard) -> None:
    def train(**options) -> None:
        """Train the router — the category path, urgency, type, department and company heads — and write a
        bundle with its evaluation report. Without --data: the public labelled file plus the annotations."""
        from training.data import DataError
        from training.train import train as run_training

        profile, data_dir = options.pop("profile"), options.get("data_dir")
        options["data"] = list(options.get("data") or ["default"])
        options["unlabelled"] = list(options.get("unlabelled") or [])
        try:
            config = TrainConfig(**options)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        taxonomy = _taxonomy(profile, data_dir)
        try:
            result = run_training(config, taxonomy, log=lambda m: typer.echo(m, err=True))
        except DataError as exc:
            raise CliError(str(exc)) from None
        except ModuleNotFoundError as exc:
            raise CliError(f"--kind {config.kind} needs {exc.name}: install jiesu[transformer]") from None
        except OSError as exc:  # transformers: a base model that is neither a checkpoint directory nor a reachable hub id
            raise CliError(f"--base-model {config.base_model}: {str(exc).splitlines()[0]}") from None
        if result.bundle is None:
            return
        shown = result.metrics.get("test") or result.metrics.get("validation")
        summary = {"bundle": str(result.bundle), "seconds": round(result.seconds, 1), "split": result.split_sizes}
        if shown:
            summary.update({k: round(shown[k], 4) for k in ("macro_f1", "accuracy", "ece")})
        routing = result.metrics.get("routing", {}).get("test")
        if routing:
            summary["routing"] = _routing_line(routing)
        typer.echo(json.dumps(summary, ensure_ascii=False))

    # the options are TrainConfig's fields (training.options), plus the profile
    train.__signature__ = cli_signature(TrainConfig, {"profile": (ProfileOpt, DEFAULT_PROFILE)})
    app.command()(guard(train))

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
