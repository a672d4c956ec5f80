"""Annotation commands: ``reference``, ``batches`` and ``check``.

``check`` is what an annotator runs on their own labels file: every bad line is listed (not only the
first), and the references of the batch that have no label yet are named.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from taxonomy import load_taxonomy
from taxonomy.profile import default_data_dir
from training.annotation.merge import read_raw, to_annotation
from training.annotation.records import FILE_CODES, AnnotationError, parse_row
from training.annotation.sampling import FOCUS_KINDS, draw_extra_pool, draw_pools
from training.annotation.tasks import read_sources, render_reference, write_batches

REF = re.compile(r"^### ([LVR]:\S+)", re.M)
ANNOTATIONS = Path(__file__).resolve().parents[2] / "data" / "annotations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.annotation")
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser("reference", help="write the annotators' reference (guidelines, tree, units)")
    ref.add_argument("--out", type=Path, required=True)
    bat = sub.add_parser("batches", help="draw the pools and write reading batches (texts go outside the repo)")
    bat.add_argument("--out", type=Path, required=True)
    bat.add_argument("--seed", type=int, default=13)
    bat.add_argument("--size", type=int, default=100)
    foc = sub.add_parser("focus", help="draw the focus pool (urgent and rare-type candidates, then random appeals) "
                         "from what no pool in data/annotations/sampling.json holds, and write its batches")
    foc.add_argument("--out", type=Path, required=True)
    foc.add_argument("--seed", type=int, default=13)
    foc.add_argument("--size", type=int, default=100)
    foc.add_argument("--kind", choices=("urgent", "scarce"), default="urgent",
                     help="urgent: urgent and rare-type candidates; scarce: the scarce first-level categories")
    foc.add_argument("--exclude", type=Path, action="append", default=[],
                     help="a pool.json being read now (not yet appended): its appeals are not drawn again")
    foc.add_argument("--random", type=int, default=40, help="random appeals from the labelled and from the other files, each")
    app = sub.add_parser("append", help="validate a pool's readings (RAW/<annotator>/*.jsonl) and append them to the "
                         "training annotations, recording the pool in sampling.json")
    app.add_argument("raw", type=Path)
    app.add_argument("--pool", required=True, help="the pool's name in sampling.json (its refs: RAW/pool.json)")
    app.add_argument("--annotations", type=Path, default=ANNOTATIONS)
    chk = sub.add_parser("check", help="check a labels file (JSONL) against the profile and its batch")
    chk.add_argument("labels", type=Path)
    chk.add_argument("--batch", type=Path, help="the batch file the labels are for: names refs not yet labelled")
    show = sub.add_parser("show", help="print appeals FROM..TO (1-based) of a batch file")
    show.add_argument("batch", type=Path)
    show.add_argument("--from", dest="start", type=int, default=1)
    show.add_argument("--to", dest="stop", type=int, default=20)
    for p in (ref, bat, foc, app, chk, show):
        p.add_argument("--profile", default="beijing")
        p.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        taxonomy = load_taxonomy(args.profile, data_dir=args.data_dir)
        if args.command == "reference":
            args.out.write_text(render_reference(taxonomy), encoding="utf-8")
            print(f"wrote {args.out}")
        elif args.command == "show":
            blocks = args.batch.read_text(encoding="utf-8").split("\n\n### ")
            chosen = blocks[args.start - 1:args.stop]
            print("\n\n".join(b if b.startswith("### ") else "### " + b for b in chosen).rstrip())
            print(f"\n[appeals {args.start}-{min(args.stop, len(blocks))} of {len(blocks)}]")
        elif args.command == "batches":
            return _batches(args)
        elif args.command == "focus":
            return _focus(args)
        elif args.command == "append":
            return _append(args, taxonomy)
        else:
            return _check(args, taxonomy)
    except (AnnotationError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _batches(args) -> int:
    pools = draw_pools(read_sources(args.data_dir or default_data_dir()), seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    blind = write_batches(pools.blind, args.out / "blind", size=args.size, prefix="B", suggest=False)
    training = write_batches(pools.training, args.out / "training", size=args.size, prefix="T", suggest=True)
    (args.out / "pools.json").write_text(json.dumps({
        "seed": args.seed, "blind": [r.ref for r in pools.blind], "training": [r.ref for r in pools.training],
        "candidates": pools.candidates}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(pools.blind)} blind appeals in {len(blind)} batches, {len(pools.training)} training appeals "
          f"in {len(training)} batches under {args.out}")
    return 0


def _read_refs(sampling: dict) -> set[str]:
    return {ref for key, value in sampling.items() if isinstance(value, list) for ref in value}


def _focus(args) -> int:
    sampling = json.loads((ANNOTATIONS / "sampling.json").read_text(encoding="utf-8"))
    rows = read_sources(args.data_dir or default_data_dir())
    patterns, quotas = FOCUS_KINDS[args.kind]
    taken = _read_refs(sampling)
    for path in args.exclude:
        taken |= set(json.loads(path.read_text(encoding="utf-8"))["refs"])
    pool, candidates = draw_extra_pool(rows, taken, seed=args.seed, random_labelled=args.random,
                                       random_unlabelled=args.random, patterns=patterns, quotas=quotas,
                                       salt=f"focus:{args.kind}" if args.kind != "urgent" else "focus")
    paths = write_batches(pool, args.out, size=args.size, prefix="F", suggest=False)
    (args.out / "pool.json").write_text(json.dumps({"seed": args.seed, "kind": args.kind, "refs": [r.ref for r in pool],
                                                    "candidates": candidates}, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
    print(f"{len(pool)} appeals in {len(paths)} batches under {args.out} "
          f"({', '.join(f'{k}: {len(v)}' for k, v in candidates.items())} candidates)")
    return 0


def _append(args, taxonomy) -> int:
    """Every reading of the pool becomes a training row (blind: no suggestion shown); nothing already
    annotated is added again, and the pool's refs and candidates are recorded in sampling.json."""
    pool = json.loads((args.raw / "pool.json").read_text(encoding="utf-8"))
    sampling_path = args.annotations / "sampling.json"
    sampling = json.loads(sampling_path.read_text(encoding="utf-8"))
    if args.pool in sampling:
        raise ValueError(f"pool {args.pool!r} is already recorded in {sampling_path}")
    known = set()
    for name in ("train.jsonl", "test.jsonl"):
        for line in (args.annotations / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                known.add(f"{FILE_CODES[row['file']]}:{row['id']}")
    readings = read_raw(args.raw, taxonomy)
    wanted = set(pool["refs"])
    stray = sorted(set(readings) - wanted)
    if stray:
        raise ValueError(f"readings for refs not in the pool: {', '.join(stray[:10])}")
    added = []
    for ref in pool["refs"]:
        if ref not in readings or ref in known:
            continue
        annotator, raw = sorted(readings[ref].items())[0]
        added.append(to_annotation(raw, taxonomy, annotator=annotator, split="train"))
    with (args.annotations / "train.jsonl").open("a", encoding="utf-8") as out:
        for row in added:
            out.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    sampling[args.pool] = [ref for ref in pool["refs"] if ref in readings]
    sampling[f"{args.pool}_candidates"] = pool["candidates"]
    sampling_path.write_text(json.dumps(sampling, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"appended {len(added)} readings of {len(wanted)} in pool {args.pool!r} to {args.annotations / 'train.jsonl'}")
    return 0


def _check(args, taxonomy) -> int:
    errors, refs = [], set()
    lines = args.labels.read_text(encoding="utf-8").splitlines() if args.labels.exists() else []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
            row = parse_row(raw, taxonomy, file=args.labels, line=number)
        except json.JSONDecodeError as exc:
            errors.append(f"{args.labels}: line {number}: not JSON ({exc.msg})")
            continue
        except AnnotationError as exc:
            errors.append(str(exc))
            continue
        if row.ref in refs:
            errors.append(f"{args.labels}: line {number}: {row.ref} labelled twice")
        refs.add(row.ref)
    for message in errors[:40]:
        print(message)
    missing = []
    if args.batch:
        wanted = REF.findall(args.batch.read_text(encoding="utf-8"))
        missing = [r for r in wanted if r not in refs]
        extra = sorted(refs - set(wanted))
        if extra:
            print(f"labels for refs not in the batch: {', '.join(extra[:20])}")
            errors.append("extra")
        print(f"{len(refs)} labelled, {len(missing)} of {len(wanted)} not yet labelled"
              + (f": {', '.join(missing[:30])}" if missing else ""))
    print("ok" if not errors else f"{len(errors)} problem(s)")
    return 0 if not errors else 1
