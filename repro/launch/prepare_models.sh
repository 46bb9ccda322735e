#!/usr/bin/env bash
# Prepare the paper's models once (needs the Hub; run on the cluster, not in CI):
#  1. download the students and teachers;
#  2. make the 16k-context students the authors used (Qwen2.5-Math has 4096 positions; prompt 1024 + response 8192
#     need more). LUFFY's recipe, which the authors' code forks: max_position_embeddings 16384, rope_theta 40000 —
#     check it against the authors' release before a paper run;
#  3. `tgpo align` each cross-family pair (docs/method.md §2: resize both embeddings to the larger, teacher's special tokens
#     set to the student's). The in-family pair (1.5B student, Qwen2.5-Math-7B teacher) needs no alignment.
# Output: $MODELS/aligned/{7b,1.5b}-x-qwen3-30b/{student,teacher} and $MODELS/qwen2.5-math-{7b,1.5b}-16k.
set -euo pipefail
MODELS=${TGPO_MODELS:-models}  # the configs' launch.prepared paths read the same variable
mkdir -p "$MODELS"
for m in Qwen/Qwen2.5-Math-7B Qwen/Qwen2.5-Math-1.5B Qwen/Qwen3-30B-A3B-Thinking-2507; do
  hf download "$m" --local-dir "$MODELS/$(basename "$m")"
done
for s in 7B 1.5B; do
  src="$MODELS/Qwen2.5-Math-$s"; dst="$MODELS/qwen2.5-math-${s,,}-16k"
  rm -rf "$dst"; cp -r "$src" "$dst"
  python - "$dst" <<'PY'
import json, sys, pathlib
p = pathlib.Path(sys.argv[1]) / "config.json"
cfg = json.loads(p.read_text()); cfg.update(max_position_embeddings=16384, rope_theta=40000.0)
p.write_text(json.dumps(cfg, indent=2))
PY
  tgpo align --teacher "$MODELS/Qwen3-30B-A3B-Thinking-2507" --student "$dst" \
             --output-dir "$MODELS/aligned/${s,,}-x-qwen3-30b"
done
echo "done: tgpo train --config CONFIG --prepared trains these folders (train_paper.sh does it)"
