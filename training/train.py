"""``jiesu train``: labelled appeals in, a model bundle out, evaluated exactly as it will be served.

Steps: load and validate the data (``training.data``), split it (stratified, seeded, duplicates kept
together), fit, calibrate on validation, write the bundle into a temporary directory, load it back
through ``serving`` and evaluate the test split with it, write the report, then move the bundle into
place. A failed run leaves any previous bundle at ``out`` untouched.

Kinds: ``linear`` (fit on train, refit on train + validation), ``transformer``
(``training.transformer.pipeline``: fine-tune, ONNX, int8) and ``ensemble`` (both, as member bundles,
their category probabilities averaged with the weight that gives the best validation macro-F1; the
report sets all three side by side on the same test split).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from serving.model.bundle import Manifest, write_manifest
from serving.model.linear import LinearCategoryModel, write_weights
from taxonomy import Taxonomy
from training.data import SplitConfig, assign_splits, fingerprint, load_frame, read_unlabelled
from training.evaluate import compute_metrics, evaluate_bundle, write_report
from training.decide import ValidationSet, choose_decisions
from training.heads import ROUTER_HEADS, head_values, parents
from training.linear import HeadSpec, LinearConfig, fit_heads
from training.options import KINDS, TrainConfig
from training.route_metrics import route_markdown, route_metrics



@dataclass
class TrainResult:
    bundle: Path | None  # None after ``prepare_only``
    metrics: dict
    seconds: float
    split_sizes: dict


def train(config: TrainConfig, taxonomy: Taxonomy, log=print) -> TrainResult:
    started = time.perf_counter()  # the config checked its own values (training.options)
    if config.kind != "linear":
        _check_base_model(str(config.base_model))
        if config.device.startswith("cuda") and not config.prepare_only:
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"--device {config.device}: no CUDA device is available here "
                                 "(use --device cpu, or --prepare-only and fine-tune on a GPU machine)")
    for path in config.unlabelled:  # a bad file stops the run before any work, not after the split
        read_unlabelled(path)
    frame = load_frame(config.data, taxonomy, config.level, config.data_dir)
    fixed_test = bool((frame["fixed_split"] == "test").any())
    test_fraction = config.test if config.test is not None else (0.0 if fixed_test else 0.1)
    frame["split"] = assign_splits(frame, SplitConfig(config.validation, test_fraction, config.seed))
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    sizes = {name: int(len(part)) for name, part in parts.items()}
    log(f"data: {len(frame)} appeals from {len(config.data)} source(s); split {sizes}"
        + (" (test: the annotations' blind split)" if fixed_test and test_fraction == 0 else ""))
    if sizes["train"] == 0:
        raise ValueError("the training split is empty: give more data or smaller validation/test fractions")
    training_data = {
        "files": [str(p) for p in config.data],
        "fingerprint": fingerprint(frame),
        "rows": int(len(frame)),
        "split": {"seed": config.seed, "validation": config.validation, "test": test_fraction,
                  "fixed_test": fixed_test, "sizes": sizes},
    }
    if config.prepare_only:
        from training.transformer.pipeline import fit_command, prepare_work

        options = config.transformer_options()
        categories = _categories(frame)
        prepare_work(frame[frame["category"].isin(categories)].reset_index(drop=True), categories, taxonomy,
                     options, log)
        log(f"prepared; to fine-tune elsewhere, copy {options.work_dir} and the base model and run:\n  "
            f"{fit_command(options)}\nthen copy its fit/ directory back and run this command without --prepare-only")
        return TrainResult(None, {}, time.perf_counter() - started, sizes)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if config.kind == "linear":
            manifest_data, metrics, _, _ = _linear_bundle(staging, config, taxonomy, parts, training_data, log)
        elif config.kind == "transformer":
            manifest_data, metrics = _transformer_bundle(staging, config, taxonomy, frame, training_data, log)
        else:
            manifest_data, metrics = _ensemble_bundle(staging, config, taxonomy, frame, parts, training_data, log)
        seconds = time.perf_counter() - started
        manifest_data["metrics"] = {
            name: {k: m[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1", "ece")} for name, m in metrics.items()
            if name in ("validation", "test")
        }
        if "routing" in metrics:
            manifest_data["metrics"]["routing"] = _routing_summary(metrics["routing"])
        manifest_data["metrics"]["train_seconds"] = round(seconds, 2)
        manifest_data["train_config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                                         if k not in ("data", "out", "progress", "unlabelled", "data_dir")}
        if config.unlabelled:
            manifest_data["train_config"]["unlabelled"] = [str(p) for p in config.unlabelled]
        write_manifest(staging, manifest_data)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return TrainResult(out, metrics, time.perf_counter() - started, sizes)


def _routing_summary(routing: dict) -> dict:
    """The headline routing numbers per evaluated split, for the manifest."""
    out = {}
    for name, m in routing.items():
        summary = {f"level{d}_{k}": m[f"level{d}"][k] for d in (1, 2, 3) if f"level{d}" in m
                   for k in ("accuracy", "macro_f1")}
        if "department" in m:
            summary["department_accuracy"] = m["department"]["accuracy"]
        if "urgency" in m:
            summary.update({k: m["urgency"][k] for k in ("macro_f1_3way", "urgent_recall", "urgent_precision")})
        if "appeal_type" in m:
            summary["type_macro_f1"] = m["appeal_type"]["macro_f1"]
        auto = m.get("auto_dispatch", {})
        if "share" in auto:
            summary.update({"auto_dispatch_share": auto["share"], "auto_dispatch_accuracy": auto["accuracy"]})
        out[name] = summary
    return out


def _check_base_model(base_model: str) -> None:
    """A local checkpoint must be a directory with config.json; anything else is taken as a hub id."""
    path = Path(base_model)
    looks_local = path.exists() or base_model.startswith((".", "/", "~")) or base_model.count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        raise ValueError(f"--base-model {base_model}: not a checkpoint directory (no config.json there); "
                         "`jiesu encoder import-e5 --out DIR` builds one")


def _linear_bundle(staging: Path, config: TrainConfig, taxonomy: Taxonomy, parts: dict, training_data: dict, log):
    """Fit the linear router into ``staging``: every head the data labels (the category path, urgency, type,
    department, company) over shared features, decisions chosen on validation. Returns (manifest data,
    metrics, validation probabilities of the train-only category head with their validation row positions)."""
    linear_config = LinearConfig(C=config.C)
    train_part, validation_part = parts["train"], parts["validation"]
    specs = []
    for head in ROUTER_HEADS:
        values = head_values(train_part, head)
        parent_map = parents(sorted({v for v in values if v})) if head in ("category_l2", "category_l3") else None
        specs.append(HeadSpec(head, values, head_values(validation_part, head), parent_map))
    fitted = fit_heads(list(train_part["title"]), list(train_part["text"]), list(validation_part["title"]),
                       list(validation_part["text"]), specs, linear_config, seed=config.seed, log=log)
    if "category" not in fitted.heads:
        raise ValueError("training needs at least two categories")
    category = fitted.heads["category"]
    extra = {name: (h.coef, h.intercept, h.temperature) for name, h in fitted.heads.items() if name != "category"}
    write_weights(staging, linear_config.features, fitted.columns, fitted.idfs, category.coef, category.intercept,
                  category.temperature, extra)
    heads = {"category": {"labels": category.labels, "level": config.level},
             **{name: {"labels": h.labels} for name, h in fitted.heads.items() if name != "category"}}
    manifest_data = {
        "kind": "linear",
        "heads": heads,
        "head_counts": {name: h.n_train for name, h in fitted.heads.items()},
        "preprocessing": linear_config.preprocessing.to_dict(),
        "features": [spec.to_dict() for spec in linear_config.features],
        "classifier": {"type": "LinearSVC", "C": linear_config.C, "class_weight": linear_config.class_weight,
                       "calibration": "temperature per head (fitted on validation; deeper category levels within "
                                      "their parent)",
                       "temperatures": {name: h.temperature for name, h in fitted.heads.items()},
                       "temperature": category.temperature, "refit_on": "train+validation"},
        "taxonomy": {"profile": taxonomy.name},
        "training_data": training_data,
    }
    metrics, validation = {}, None
    known = [i for i, y in enumerate(validation_part["category"]) if y in set(category.labels)]
    if known:  # the train-only model, before the refit saw validation
        validation = (np.asarray(known), category.validation_probabilities[known])
        metrics["validation"] = compute_metrics(category.labels, list(validation_part["category"].iloc[known]),
                                                validation[1])
    val_heads = {name: h.validation_probabilities for name, h in fitted.heads.items()}
    served = LinearCategoryModel(Manifest(staging, manifest_data))  # evaluate what serving will load
    test = parts["test"][parts["test"]["category"].isin(category.labels)]
    if len(test):
        probabilities = served.predict_proba(list(test["title"]), list(test["text"]))
        metrics["test"] = compute_metrics(category.labels, list(test["category"]), probabilities)
    _write_reports(staging, metrics)
    _decide_and_report(staging, manifest_data, taxonomy, parts, metrics, validation_part, val_heads, log)
    return manifest_data, metrics, validation, val_heads


def _decide_and_report(staging: Path, manifest_data: dict, taxonomy: Taxonomy, parts: dict, metrics: dict,
                       validation_part, val_heads: dict | None, log) -> None:
    """Choose the bundle's decisions on validation (where its heads learnt more than the first level) and
    write the routing report of the test split, as the service decides."""
    heads = {name: manifest_data["heads"][name]["labels"] for name in manifest_data["heads"]}
    if val_heads and len(validation_part) and _learns_routing(heads):
        decisions = choose_decisions(ValidationSet(validation_part.reset_index(drop=True), val_heads, heads,
                                                   manifest_data.get("head_counts", {})), taxonomy, log)
        manifest_data["decision"] = decisions.to_dict()
    _route_report(staging, Manifest(staging, manifest_data), taxonomy, parts, metrics)


def _learns_routing(heads: dict) -> bool:
    """A bundle chooses routing decisions where people's labels taught it more than the first level."""
    return any(name in heads for name in ("category_l2", "urgency", "appeal_type", "department"))


def _route_report(staging: Path, manifest: Manifest, taxonomy: Taxonomy, parts: dict, metrics: dict) -> None:
    """The router's numbers on the test split (and the blind annotations among it), as the service decides."""
    from serving.model.predictor import AppealInput, Predictor

    test = parts["test"].reset_index(drop=True)
    if not len(test):
        return
    predictor = Predictor(staging, taxonomy, manifest=manifest)
    predictions = predictor.predict([AppealInput(text=x or t, title=t) for t, x in zip(test["title"], test["text"])])
    threshold = predictor.decisions.dispatch
    routing = {"test": route_metrics(test, predictions, threshold)}
    blind = (test["fixed_split"] == "test").to_numpy()
    if blind.any() and not blind.all():
        rows = np.flatnonzero(blind)
        routing["test_annotated"] = route_metrics(test.iloc[rows].reset_index(drop=True),
                                                  [predictions[i] for i in rows], threshold)
    metrics["routing"] = routing
    (staging / "report_routing.json").write_text(json.dumps(routing, ensure_ascii=False, indent=2), encoding="utf-8")
    with (staging / "report.md").open("a", encoding="utf-8") as fh:
        for name, values in routing.items():
            fh.write("\n" + route_markdown(values, f"Routing on {name} ({values['n']} appeals)"))


def _write_reports(staging: Path, metrics: dict, name: str = "category") -> str | None:
    evaluated = "test" if "test" in metrics else "validation" if "validation" in metrics else None
    if evaluated:
        write_report(staging, metrics[evaluated], f"{name} ({evaluated} split, {metrics[evaluated]['n']} appeals)")
    if "validation" in metrics and evaluated != "validation":
        (staging / "report_validation.json").write_text(
            json.dumps(metrics["validation"], ensure_ascii=False, indent=2), encoding="utf-8")
    return evaluated


def _categories(frame) -> list[str]:
    train_labels = sorted(set(frame.loc[frame["split"] == "train", "category"]))
    if len(train_labels) < 2:
        raise ValueError(f"training needs at least two categories, found {train_labels}")
    return train_labels


def _transformer_bundle(staging: Path, config: TrainConfig, taxonomy: Taxonomy, frame, training_data: dict, log,
                        built=None):
    from training.transformer.pipeline import build_transformer, heads_markdown

    categories = _categories(frame)
    frame = frame[frame["category"].isin(categories)].reset_index(drop=True)
    if built is None:
        built = build_transformer(staging, frame, categories, taxonomy, config.transformer_options(), config.level,
                                  log=log, progress=config.progress)
    manifest_data = {**built.manifest_data, "taxonomy": {"profile": taxonomy.name}, "training_data": training_data,
                     "head_counts": built.head_counts or {}}
    evaluated = _write_reports(staging, built.metrics)
    if evaluated:
        with (staging / "report.md").open("a", encoding="utf-8") as fh:
            fh.write(heads_markdown(built.head_metrics, built.report_extra))
    (staging / "report_heads.json").write_text(json.dumps(
        {"heads": built.head_metrics, **built.report_extra}, ensure_ascii=False, indent=2), encoding="utf-8")
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    _decide_and_report(staging, manifest_data, taxonomy, parts, built.metrics, parts["validation"],
                       built.validation_heads, log)
    return manifest_data, built.metrics


def _ensemble_bundle(staging: Path, config: TrainConfig, taxonomy: Taxonomy, frame, parts, training_data: dict, log):
    from training.transformer.pipeline import build_transformer

    categories = _categories(frame)
    linear_dir, transformer_dir = staging / "members" / "linear", staging / "members" / "transformer"
    linear_dir.mkdir(parents=True)
    transformer_dir.mkdir(parents=True)
    linear_manifest, linear_metrics, linear_val, linear_heads = _linear_bundle(linear_dir, config, taxonomy, parts,
                                                                               training_data, log)
    if linear_manifest["heads"]["category"]["labels"] != categories:
        raise ValueError("the linear and transformer members would have different category labels")
    write_manifest(linear_dir, linear_manifest)
    kept = frame[frame["category"].isin(categories)].reset_index(drop=True)
    built = build_transformer(transformer_dir, kept, categories, taxonomy, config.transformer_options(),
                              config.level, log=log, progress=config.progress)
    transformer_manifest, transformer_metrics = _transformer_bundle(transformer_dir, config, taxonomy, frame,
                                                                    training_data, log, built=built)
    write_manifest(transformer_dir, transformer_manifest)

    # Weight from validation: the linear member's train-only probabilities against the transformer's.
    validation = parts["validation"]
    weight, table = 0.5, []
    if linear_val is not None and len(validation):
        rows, p_linear = linear_val
        p_transformer = built.validation_probabilities[rows]
        truth = list(validation.iloc[rows]["category"])
        for w in np.round(np.linspace(0, 1, 11), 2):
            score = compute_metrics(categories, truth, w * p_linear + (1 - w) * p_transformer)["macro_f1"]
            table.append({"linear_weight": float(w), "validation_macro_f1": score})
        weight = max(table, key=lambda r: (r["validation_macro_f1"], -abs(r["linear_weight"] - 0.5)))["linear_weight"]
    log(f"ensemble: linear weight {weight:.1f} (validation macro-F1 by weight: "
        + ", ".join(f"{r['linear_weight']:.1f}→{r['validation_macro_f1']:.4f}" for r in table) + ")")
    head_weights, val_heads = _head_weights(linear_manifest, transformer_manifest, linear_heads, built,
                                            parts["validation"], weight, log)
    manifest_data = {
        "kind": "ensemble",
        "heads": {"category": {"labels": categories, "level": config.level},
                  **{k: v for k, v in transformer_manifest["heads"].items() if k != "category"}},
        "head_counts": linear_manifest.get("head_counts", {}),
        "preprocessing": linear_manifest["preprocessing"],
        "members": [{"path": "members/linear", "kind": "linear", "weight": weight},
                    {"path": "members/transformer", "kind": "transformer", "weight": round(1 - weight, 2)}],
        "head_weights": head_weights,
        "weight_search": table,
        "taxonomy": {"profile": taxonomy.name},
        "training_data": training_data,
    }
    from serving.model.predictor import load_category_model  # evaluate the ensemble as it will be served

    served = load_category_model(Manifest(staging, manifest_data))
    metrics = {}
    test = parts["test"][parts["test"]["category"].isin(categories)]
    if len(test):
        metrics["test"] = compute_metrics(categories, list(test["category"]),
                                          served.predict_proba(list(test["title"]), list(test["text"])))
    _write_reports(staging, metrics, "ensemble category")
    _decide_and_report(staging, manifest_data, taxonomy, parts, metrics, parts["validation"], val_heads, log)
    comparison = {"linear": linear_metrics.get("test"), "transformer": transformer_metrics.get("test"),
                  "ensemble": metrics.get("test")}
    (staging / "comparison.json").write_text(json.dumps(comparison, ensure_ascii=False, indent=2), encoding="utf-8")
    with (staging / "report.md").open("a", encoding="utf-8") as fh:
        fh.write(comparison_markdown(comparison))
    return manifest_data, metrics


def _head_weights(linear_manifest: dict, transformer_manifest: dict, linear_heads: dict, built, validation,
                  category_weight: float, log) -> tuple[dict, dict | None]:
    """Per head both members have with the same labels, the linear member's weight with the lowest
    validation log-loss (the category head keeps the weight chosen for its macro-F1); and the mixed
    validation probabilities that the ensemble's decisions are chosen on."""
    from training.heads import head_values

    if not built.validation_heads or linear_heads is None or len(validation) == 0:
        return {}, None
    weights, mixed = {"category": category_weight}, {}
    for head, labels in transformer_manifest["heads"].items():
        tr = built.validation_heads[head]
        lin_labels = linear_manifest["heads"].get(head, {}).get("labels")
        if lin_labels != labels["labels"] or tr.shape[0] != linear_heads[head].shape[0]:
            mixed[head] = tr
            continue
        lin = linear_heads[head]
        if head != "category":
            truth = head_values(validation, head)
            rows = [i for i, t in enumerate(truth) if t in labels["labels"]]
            y = np.array([labels["labels"].index(truth[i]) for i in rows])
            best = (np.inf, 0.5)
            for w in np.round(np.linspace(0, 1, 11), 2):
                p = w * lin[rows] + (1 - w) * tr[rows]
                nll = float(-np.log(p[np.arange(len(rows)), y].clip(1e-12)).mean()) if rows else 0.0
                best = min(best, (nll, float(w)))
            weights[head] = best[1]
        mixed[head] = weights[head] * lin + (1 - weights[head]) * tr
    log(f"ensemble: linear weight per head {weights}")
    return weights, mixed


def comparison_markdown(comparison: dict) -> str:
    present = {k: v for k, v in comparison.items() if v}
    if not present:
        return ""
    names = list(present)
    lines = ["", "## Linear, transformer and ensemble on the same test split", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in ("accuracy", "macro_f1", "weighted_f1", "ece"):
        lines.append(f"| {key} | " + " | ".join(f"{present[n][key]:.4f}" for n in names) + " |")
    lines += ["", "Per-class F1:", "", "| class | " + " | ".join(names) + " | support |",
              "|---|" + "---|" * (len(names) + 1)]
    first = present[names[0]]
    for label, row in first["per_class"].items():
        lines.append(f"| {label} | " + " | ".join(f"{present[n]['per_class'][label]['f1']:.3f}" for n in names)
                     + f" | {row['support']} |")
    return "\n".join(lines) + "\n"


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


__all__ = ["KINDS", "TrainConfig", "TrainResult", "train", "evaluate_bundle"]
