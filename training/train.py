"""``jiesu train``: labelled appeals in, a model bundle out, evaluated exactly as it will be served.

Steps: load and validate the data (``training.data``), split it (stratified, seeded, duplicates kept
together), fit on train, calibrate on validation, refit on train + validation, write the bundle into a
temporary directory, load it back through ``serving`` and evaluate the test split with it, write the
report, then move the bundle into place. A failed run leaves any previous bundle at ``out`` untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from serving.bundle import Manifest, write_manifest
from serving.linear import LinearCategoryModel, softmax, write_weights
from taxonomy import Taxonomy
from training.data import SplitConfig, assign_splits, fingerprint, load_frame
from training.evaluate import compute_metrics, write_report
from training.linear import LinearConfig, fit_linear


@dataclass
class TrainConfig:
    data: list[Path]
    out: Path
    kind: str = "linear"
    seed: int = 13
    validation: float = 0.1
    test: float = 0.1
    level: int = 1
    C: float = 1.0
    extra: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    bundle: Path
    metrics: dict
    seconds: float
    split_sizes: dict


def train(config: TrainConfig, taxonomy: Taxonomy, log=print) -> TrainResult:
    started = time.perf_counter()
    if config.kind != "linear":
        raise ValueError(f"model kind {config.kind!r} is not available yet; use --kind linear")
    frame = load_frame(config.data, taxonomy, config.level)
    frame["split"] = assign_splits(frame, SplitConfig(config.validation, config.test, config.seed))
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    sizes = {name: int(len(part)) for name, part in parts.items()}
    log(f"data: {len(frame)} appeals from {len(config.data)} file(s); split {sizes}")
    if sizes["train"] == 0:
        raise ValueError("the training split is empty: give more data or smaller validation/test fractions")

    linear_config = LinearConfig(C=config.C)
    fitted = fit_linear(
        list(parts["train"]["title"]), list(parts["train"]["text"]), list(parts["train"]["category"]),
        list(parts["validation"]["title"]), list(parts["validation"]["text"]), list(parts["validation"]["category"]),
        linear_config, seed=config.seed,
    )
    log(f"fitted {len(fitted.labels)} classes, {fitted.coef.shape[1]} features, temperature {fitted.temperature:.3f}")

    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_weights(staging, linear_config.features, fitted.columns, fitted.idfs, fitted.coef, fitted.intercept,
                      fitted.temperature)
        manifest_data = {
            "kind": "linear",
            "heads": {"category": {"labels": fitted.labels, "level": config.level}},
            "preprocessing": linear_config.preprocessing.to_dict(),
            "features": [spec.to_dict() for spec in linear_config.features],
            "classifier": {"type": "LinearSVC", "C": linear_config.C, "class_weight": linear_config.class_weight,
                           "calibration": "temperature (fitted on validation)", "temperature": fitted.temperature,
                           "refit_on": "train+validation"},
            "taxonomy": {"profile": taxonomy.name},
            "training_data": {
                "files": [str(p) for p in config.data],
                "fingerprint": fingerprint(frame),
                "rows": int(len(frame)),
                "split": {"seed": config.seed, "validation": config.validation, "test": config.test,
                          "sizes": sizes},
            },
        }
        served = LinearCategoryModel(Manifest(staging, manifest_data))  # evaluate what serving will load
        metrics = {}
        if fitted.validation_scores is not None:  # the train-only model, before the refit saw validation
            rows = parts["validation"].iloc[fitted.validation_rows]
            metrics["validation"] = compute_metrics(fitted.labels, list(rows["category"]),
                                                    softmax(fitted.validation_scores, fitted.temperature))
        test = parts["test"][parts["test"]["category"].isin(fitted.labels)]
        if len(test):
            probabilities = served.predict_proba(list(test["title"]), list(test["text"]))
            metrics["test"] = compute_metrics(fitted.labels, list(test["category"]), probabilities)
        evaluated = "test" if "test" in metrics else "validation" if "validation" in metrics else None
        if evaluated:
            write_report(staging, metrics[evaluated], f"category ({evaluated} split, {metrics[evaluated]['n']} appeals)")
        if "validation" in metrics and evaluated != "validation":
            (staging / "report_validation.json").write_text(
                json.dumps(metrics["validation"], ensure_ascii=False, indent=2), encoding="utf-8")
        seconds = time.perf_counter() - started
        manifest_data["metrics"] = {
            name: {k: m[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1", "ece")} for name, m in metrics.items()
        }
        manifest_data["metrics"]["train_seconds"] = round(seconds, 2)
        manifest_data["train_config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                                         if k not in ("data", "out")}
        write_manifest(staging, manifest_data)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TrainResult(out, metrics, time.perf_counter() - started, sizes)


def _replace(staging: Path, out: Path) -> None:
    if out.exists():
        if not (out / "manifest.json").exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} exists and is not a model bundle; refusing to overwrite it")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def evaluate_bundle(bundle: Path, data: list[Path], taxonomy: Taxonomy, out: Path | None = None) -> dict:
    """Recompute the report for a bundle on any labelled file(s)."""
    from serving.predictor import load_category_model
    from serving.bundle import read_manifest

    manifest = read_manifest(bundle)
    model = load_category_model(manifest)
    level = int(manifest.heads["category"].get("level", 1))
    frame = load_frame(data, taxonomy, level)
    unknown = sorted(set(frame["category"]) - set(model.labels))
    if unknown:
        raise ValueError(f"the data has categories the model does not know: {', '.join(unknown)}")
    probabilities = model.predict_proba(list(frame["title"]), list(frame["text"]))
    metrics = compute_metrics(model.labels, list(frame["category"]), probabilities)
    if out is not None:
        write_report(Path(out), metrics, f"category ({len(frame)} appeals from {', '.join(p.name for p in data)})")
    return metrics


__all__ = ["TrainConfig", "TrainResult", "train", "evaluate_bundle"]
