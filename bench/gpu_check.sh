#!/usr/bin/env bash
# Every GPU measurement of the kny config in one run, most important first:
# the attention equality tests on the GPU, the training steps (transformer
# with two remat policies, tokenizer), sampling at batch 1 and 16, the loader,
# and XLA's memory plan with the largest batch. JSON lines go to
# $OUT/bench.jsonl (one per benchmark), logs to $OUT/*.log.
#
#   OUT=/tmp/gpu bash bench/gpu_check.sh [configs/kny.py] [tfds data_dir]
#
# Needs jax with a GPU and this project's dependencies (no ffmpeg: every
# benchmark uses random inputs, and the loader reads an already built
# dataset when a data_dir is given). Each step has its own time limit, so a
# hang costs one line, not the run. Figures: README "Benchmarks".
set -u
OUT=${OUT:-/tmp/mirai_gpu}
CONFIG=${1:-configs/kny.py}
DATA=${2:-}
STEPS=${STEPS:-8}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
start=$(date +%s)

run() {  # name limit_s command...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log"
  local rc=$?
  grep -h '^{' "$OUT/$name.out" | tee -a "$OUT/bench.jsonl"
  echo "-- $name: rc $rc, $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - start )) s)"
  [ $rc -eq 0 ] || tail -n 4 "$OUT/$name.log" "$OUT/$name.out"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"

run transformer 200 python3 bench/train_transformer.py --config="$CONFIG" --steps="$STEPS"
run sample_b1 120 python3 bench/sample_speed.py --config="$CONFIG" --uncached=false --repeats=3
run tokenizer 200 python3 bench/train_tokenizer.py --config="$CONFIG" --steps="$STEPS"
JAX_PLATFORMS= run attention_tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_attention.py -k "reference or cache or auto"
run transformer_remat_dots 200 python3 bench/train_transformer.py --config="$CONFIG" --steps="$STEPS" --config.transformer.remat=dots
run sample_b16 120 python3 bench/sample_speed.py --config="$CONFIG" --uncached=false --repeats=3 --batch=16
if [ -n "$DATA" ]; then
  run loader 120 python3 bench/loader_throughput.py --config="$CONFIG" --data_dir="$DATA" --workers=0,4,8
fi
run memory 300 python3 bench/memory.py --config="$CONFIG"
echo "done in $(( $(date +%s) - start )) s"
