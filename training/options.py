"""``jiesu train``'s settings, defined once: a dataclass whose fields carry their help text, the
``jiesu train`` options are generated from it, and ``__post_init__`` checks every value (the CLI, the
tests and any script get the same errors, each naming its option).

The transformer's own settings are read from the same object: ``fit_config()`` gives the fine-tune's
``FitConfig`` (its fields share their names with these), ``transformer_options()`` the pipeline's.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Optional

KINDS = ("linear", "transformer", "ensemble")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
CHECKPOINTING = ("auto", "on", "off")


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, cli: bool = True, **limits) -> Any:
    """A field with its command-line help; ``limits`` (min, max) are checked and shown."""
    metadata = {"help": help, "flag": flag, "cli": cli, **limits}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    out: Path = option(help="Directory to write the model bundle to.")
    data: list[Path] = option(["default"], "Labelled appeals (CSV, JSONL or Parquet) or annotation files (ids "
                                           "and labels, texts joined from the data directory); repeat for more files. "
                                           "`default` names the default set: the public labelled file plus "
                                           "data/annotations/*.jsonl.")
    kind: str = option("linear", "Model kind: linear (fast), transformer (fine-tuned encoder, ONNX int8) or ensemble "
                                 "(both, probabilities averaged).")
    seed: int = option(13, "Seed for the split and the model.")
    validation: float = option(0.1, "Validation fraction.", min=0.0, max=0.9)
    test: Optional[float] = option(None, "Test fraction of the rows outside the annotations' fixed test split "
                                         "(default: 0.1 where the data has no fixed test split, else 0).",
                                   min=0.0, max=0.9)
    C: float = option(1.0, "Inverse regularisation of the linear SVM.", flag="--C", min=1e-6)
    base_model: Optional[str] = option(None, "Transformer kinds: a local BERT-family checkpoint directory (or a hub "
                                             "id where a hub is reachable); `jiesu encoder import-e5` builds one "
                                             "offline.")
    work_dir: Optional[Path] = option(None, "Transformer kinds: where tokenized data, checkpoints and ONNX graphs are "
                                            "kept; the same command resumes from it. Default: <out>.work")
    epochs: int = option(5, "Transformer kinds: most epochs.", min=1)
    batch_size: int = option(32, "Transformer kinds: appeals per step.", min=1)
    lr: float = option(5e-5, "Transformer kinds: encoder learning rate.", min=0.0)
    max_length: int = option(256, "Transformer kinds: tokens read per appeal.", min=8, max=4096)
    head_fraction: float = option(0.75, "Transformer kinds: share of a long body's budget taken from its start (the "
                                        "rest from its end); 1 keeps only the start.", min=0.01, max=1.0)
    layers: Optional[int] = option(None, "Transformer kinds: keep the first N encoder layers.", min=1)
    layer_decay: float = option(1.0, "Transformer kinds: each layer below the top learns this factor slower "
                                     "(1 = off).", min=0.01, max=1.0)
    label_smoothing: float = option(0.0, "Transformer kinds: label smoothing of the heads' losses.", min=0.0, max=0.5)
    distill: float = option(0.0, "Transformer kinds: weight (0–1) of the linear model's soft targets in the category "
                                 "loss; 0 = off. Training appeals get out-of-fold targets.", min=0.0, below=1.0)
    unlabelled: list[Path] = option([], "Transformer kinds, with --distill: appeals without labels (title, text) "
                                        "that the encoder learns from the linear model's probabilities; repeat "
                                        "for more files.")
    device: str = option("auto", "Transformer kinds: auto, cpu or cuda.")
    precision: str = option("auto", "Transformer kinds: auto (bfloat16 autocast on a GPU or a CPU with native "
                                    "bfloat16, else fp32), bf16 or fp32.")
    checkpointing: str = option("auto", "Transformer kinds: activation checkpointing, auto (on where the "
                                        "activations would take more than a quarter of this machine's memory), on "
                                        "or off.")
    patience: int = option(2, "Transformer kinds: epochs without a better validation macro-F1 before stopping.",
                           min=1)
    max_steps: Optional[int] = option(None, "Transformer kinds: stop after N steps in all.", min=1)
    prepare_only: bool = option(False, "Transformer kinds: tokenize into the work directory, print the command that "
                                       "fine-tunes from it (e.g. on a GPU machine) and stop.")
    data_dir: Optional[Path] = option(None, "Shared data directory (JIESU_DATA_DIR).")
    level: int = option(1, cli=False)
    progress: bool = option(True, cli=False)
    extra: dict = option({}, cli=False)

    def __post_init__(self) -> None:
        self.data = [Path(p) if str(p) != "default" else p for p in (self.data or ["default"])]
        self.out = Path(self.out)
        for item in fields(self):
            value, meta = getattr(self, item.name), item.metadata
            if value is None or isinstance(value, (bool, list, dict)):
                continue
            if "min" in meta and value < meta["min"]:
                raise ValueError(f"{flag_of(item)} must be at least {meta['min']}, got {value}")
            if "max" in meta and value > meta["max"]:
                raise ValueError(f"{flag_of(item)} must be at most {meta['max']}, got {value}")
            if "below" in meta and value >= meta["below"]:
                raise ValueError(f"{flag_of(item)} must be in [{meta.get('min', 0):g}, {meta['below']:g}), "
                                 f"got {value}")
        for name, allowed in (("kind", KINDS), ("precision", PRECISIONS), ("checkpointing", CHECKPOINTING)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.kind != "linear" and not self.base_model:
            raise ValueError(f"--kind {self.kind} needs --base-model DIR (a BERT-family checkpoint; "
                             "`jiesu encoder import-e5 --out DIR` builds one without a model hub)")
        if self.unlabelled and self.distill <= 0:
            raise ValueError("--unlabelled needs --distill W (0 < W < 1): unlabelled appeals are learnt only from "
                             "the linear teacher's soft targets")
        if self.distill > 0 and self.kind == "linear":
            raise ValueError("--distill applies to the transformer kinds")
        if self.prepare_only and self.kind == "linear":
            raise ValueError("--prepare-only applies to the transformer kinds")
        if (self.validation + (self.test or 0.0)) >= 1:
            raise ValueError("--validation and --test must leave rows to train on (their sum is below 1)")

    def fit_config(self):
        """The fine-tune's settings (``training.transformer.fit.FitConfig``) from the shared fields."""
        from training.transformer.fit import FitConfig

        names = {f.name for f in fields(FitConfig)}
        return FitConfig(**{name: getattr(self, name) for name in names if hasattr(self, name)})

    def transformer_options(self):
        from training.transformer.pipeline import TransformerOptions

        work = Path(self.work_dir) if self.work_dir else self.out.with_name(self.out.name + ".work")
        return TransformerOptions(base_model=str(self.base_model), work_dir=work, fit=self.fit_config(),
                                  max_length=self.max_length, head_fraction=self.head_fraction,
                                  unlabelled=tuple(Path(p) for p in self.unlabelled))


def _limits_text(meta: dict) -> str:
    low, high, below = meta.get("min"), meta.get("max"), meta.get("below")
    if high is not None:
        return f" [{low:g}–{high:g}]" if low is not None else f" [at most {high:g}]"
    if below is not None:
        return f" [{low or 0:g}, {below:g})"
    return f" [at least {low:g}]" if low is not None else ""


def flag_of(item) -> str:
    return item.metadata.get("flag") or "--" + item.name.replace("_", "-")


def cli_signature(config: type, extra: dict[str, tuple[Any, Any]] | None = None) -> inspect.Signature:
    """A typer-readable signature with one option per CLI field of ``config``; ``extra`` adds parameters
    (name -> (annotation, default)) that are not the config's, such as the profile."""
    import typer

    parameters = []
    for item in fields(config):
        if not item.metadata.get("cli", True):
            continue
        default = item.default if item.default is not MISSING else (
            item.default_factory() if item.default_factory is not MISSING else ...)
        annotation = _cli_type(item.type)
        if default == ["default"]:
            default = None  # typer shows no list default; None stands for the default set
        # the limits are checked by ``__post_init__`` (one line naming the option), not by click
        opt = typer.Option(flag_of(item), help=item.metadata.get("help", "") + _limits_text(item.metadata))
        parameters.append(inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=Annotated[annotation, opt],
                                            default=default if default is not ... else ...))
    for name, (annotation, default) in (extra or {}).items():
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                            default=default))
    return inspect.Signature(parameters)


def _cli_type(annotation):
    """The field's type as typer takes it (string annotations resolved; lists optional)."""
    resolved = {"Path": Path, "list[Path]": Optional[list[Path]], "str": str, "int": int, "float": float,
                "bool": bool, "Optional[float]": Optional[float], "Optional[int]": Optional[int],
                "Optional[str]": Optional[str], "Optional[Path]": Optional[Path]}
    return resolved.get(annotation, annotation) if isinstance(annotation, str) else annotation
