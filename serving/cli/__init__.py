"""``jiesu``: the command line. Every command answers bad input with one line on stderr and exit code 2.

The service's commands are here and in ``serving.cli.service``; the training commands are added by
``training.cli`` through the ``jiesu.commands`` entry point, so serving never imports training.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from serving.model.bundle import BundleError
from serving.model.appeals import AppealInput, AppealInputError, JsonlError, read_jsonl
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
    from serving.model.appeals import validate_appeal
    from serving.model.batch import predict_many
    from serving.model.predictor import Predictor

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


from serving.cli.service import register  # noqa: E402 - after _guard, which it wraps commands with


def load_plugins(app: typer.Typer, guard) -> None:
    """Commands other packages add (``jiesu.commands`` entry points): training's train, evaluate, encoder
    and annotations commands live in ``training.cli``, so the service never imports training."""
    from importlib.metadata import entry_points

    for point in entry_points(group="jiesu.commands"):
        point.load()(app, guard)

register(app, _guard)


def main() -> None:  # pragma: no cover - console entry
    """The ``jiesu`` command: the service's commands plus those other packages add (loaded only here, so
    importing ``serving.cli`` never imports training)."""
    load_plugins(app, _guard)
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
