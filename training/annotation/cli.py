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
from training.annotation.records import AnnotationError, parse_row
from training.annotation.sampling import draw_pools
from training.annotation.tasks import read_sources, render_reference, write_batches

REF = re.compile(r"^### ([LVR]:\S+)", re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.annotation")
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser("reference", help="write the annotators' reference (guidelines, tree, units)")
    ref.add_argument("--out", type=Path, required=True)
    bat = sub.add_parser("batches", help="draw the pools and write reading batches (texts go outside the repo)")
    bat.add_argument("--out", type=Path, required=True)
    bat.add_argument("--seed", type=int, default=13)
    bat.add_argument("--size", type=int, default=100)
    chk = sub.add_parser("check", help="check a labels file (JSONL) against the profile and its batch")
    chk.add_argument("labels", type=Path)
    chk.add_argument("--batch", type=Path, help="the batch file the labels are for: names refs not yet labelled")
    show = sub.add_parser("show", help="print appeals FROM..TO (1-based) of a batch file")
    show.add_argument("batch", type=Path)
    show.add_argument("--from", dest="start", type=int, default=1)
    show.add_argument("--to", dest="stop", type=int, default=20)
    for p in (ref, bat, chk, show):
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
