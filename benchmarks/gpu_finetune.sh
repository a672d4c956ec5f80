#!/usr/bin/env bash
# The fine-tunes behind docs/BENCHMARKS.md ("Transformer router"), run on a lent GPU machine in one go.
# Before: here, `jiesu train --kind transformer … --prepare-only` for each work directory below (the
# base model and the prepared/ folders travel with the working tree). After: the best 12-layer run's
# weights come back packed (benchmarks/pack_fit.py) in $OUT with every run's fit.json, and
# `jiesu train --kind ensemble --work-dir $WORK/<best>` here exports and evaluates it.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-var/gpu-out}
mkdir -p "$OUT"
BASE=${BASE:-var/encoders/e5-small-zh-f16}
WORK=${WORK:-var/work}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-6}
mkdir -p "$WORK/runs"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/log.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/log.txt"
summarise() {
python3 - "$OUT" "$WORK/runs" <<'PY'
import json, sys, glob, os
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[2], "fit-*.json"))):
    r = json.load(open(f))
    rows.append({"run": os.path.basename(f)[4:-5], "best_score": r["best_score"], "best_epoch": r["best_epoch"],
                 "steps": r["global_step"], "seconds": r["seconds"], "history": r["history"]})
best = open(os.path.join(sys.argv[2], "BEST")).read().strip() if os.path.exists(os.path.join(sys.argv[2], "BEST")) else None
json.dump({"packed": best, "runs": rows}, open(os.path.join(sys.argv[1], "summary.json"), "w"), indent=1)
print("packed:", best)
for r in rows:
    print(f"{r['run']:<14} val macro-F1 {r['best_score']:.4f} epoch {r['best_epoch']} {r['seconds']} s")
PY
}
best_score=-1
# name  prepared-from  extra fit arguments
# RUNS (env, one run a line) replaces this list; the first session's runs, kept for reproduction:
#   e5-12 e5-12 | e5-12-head e5-12-head | e5-12-lr1e4 e5-12 --lr 0.0001 | e5-12-512 e5-12-512 | e5-6 e5-12 --layers 6
# Next recipes to try (each resumes nothing: its own work directory under $WORK):
#   e5-12-llrd e5-12 --layer-decay 0.85 --lr 0.0001 --epochs 10 --patience 3
#   e5-12-ls e5-12 --label-smoothing 0.1
if [ -n "${RUNS:-}" ]; then
  mapfile -t runs <<<"$RUNS"
else
  runs=(
    "e5-12 e5-12"
    "e5-12-head e5-12-head"
    "e5-12-lr1e4 e5-12 --lr 0.0001"
    "e5-12-512 e5-12-512"
    "e5-6 e5-12 --layers ${SIX:-6}"
  )
fi
for run in "${runs[@]}"; do
  set -- $run
  name=$1 prepared=$2; shift 2
  echo "== $name ($*)" | tee -a "$OUT/log.txt"
  start=$(date +%s)
  python3 -m training.transformer.fit --prepared "$WORK/$prepared/prepared" --base-model "$BASE" \
    --out "$WORK/$name/fit" --device "$DEVICE" --epochs "$EPOCHS" --save-every 0 "$@" 2>&1 \
    | grep -v "it/s\]" | tee -a "$OUT/log.txt"
  echo "$name wall $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
  cp "$WORK/$name/fit/fit.json" "$WORK/runs/fit-$name.json" 2>/dev/null || true
  score=$(python3 -c "import json; print(json.load(open('$WORK/$name/fit/fit.json'))['best_score'])" 2>/dev/null || echo -1)
  layers=$(python3 -c "import json; print(json.load(open('$WORK/$name/fit/best/config.json'))['num_hidden_layers'])" 2>/dev/null || echo 0)
  if [ "$layers" = "${FULL_LAYERS:-12}" ] && python3 -c "import sys; sys.exit(0 if $score > $best_score else 1)"; then
    best_score=$score
    python3 benchmarks/pack_fit.py pack --fit "$WORK/$name/fit" --out "$OUT/packed" && echo "$name" > "$WORK/runs/BEST"
  fi
  summarise  # after every run: a call cut short at its time limit still returns what finished
done
