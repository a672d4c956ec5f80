"""Carry a finished fit directory between machines in pieces small enough for a file transfer limit.

    python benchmarks/pack_fit.py pack   --fit var/work/e5-12/fit --out DIR [--part-mb 15]
    python benchmarks/pack_fit.py unpack --parts DIR --fit var/work/e5-12/fit

``pack`` writes the best weights in float16 (each weight rounds by at most 2^-11 of its value; the
parity check after export compares ONNX with these same weights) cut into ``weights.partNN`` files, and ``fit.pack.json`` holding
fit.json, the encoder config and the heads. ``unpack`` rebuilds ``fit/`` so that
``jiesu train --kind transformer|ensemble --work-dir …`` finds the fine-tune finished and goes on to
export. Only torch, safetensors and the standard library are needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def pack(fit: Path, out: Path, part_mb: float) -> None:
    import torch
    from safetensors.torch import load_file, save

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("weights.part*"):
        old.unlink()
    state = load_file(str(fit / "best" / "model.safetensors"))
    blob = save({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()})
    size = int(part_mb * 2**20)
    parts = [blob[i:i + size] for i in range(0, len(blob), size)]
    for i, part in enumerate(parts):
        (out / f"weights.part{i:02d}").write_bytes(part)
    record = {
        "fit": json.loads((fit / "fit.json").read_text(encoding="utf-8")),
        "config": json.loads((fit / "best" / "config.json").read_text(encoding="utf-8")),
        "heads": json.loads((fit / "best" / "heads.json").read_text(encoding="utf-8")),
        "parts": len(parts),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    (out / "fit.pack.json").write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"packed {fit} into {len(parts)} part(s), {len(blob) / 2**20:.1f} MB")


def unpack(parts: Path, fit: Path) -> None:
    record = json.loads((parts / "fit.pack.json").read_text(encoding="utf-8"))
    blob = b"".join((parts / f"weights.part{i:02d}").read_bytes() for i in range(record["parts"]))
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise SystemExit("error: the parts do not add up to the packed weights (sha256 differs)")
    (fit / "best").mkdir(parents=True, exist_ok=True)
    (fit / "best" / "model.safetensors").write_bytes(blob)
    (fit / "best" / "config.json").write_text(json.dumps(record["config"], indent=2), encoding="utf-8")
    (fit / "best" / "heads.json").write_text(json.dumps(record["heads"], indent=2), encoding="utf-8")
    (fit / "fit.json").write_text(json.dumps(record["fit"], indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"unpacked into {fit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--fit", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--part-mb", type=float, default=15)
    u = sub.add_parser("unpack")
    u.add_argument("--parts", type=Path, required=True)
    u.add_argument("--fit", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.fit, args.out, args.part_mb)
    else:
        unpack(args.parts, args.fit)


if __name__ == "__main__":
    main()
