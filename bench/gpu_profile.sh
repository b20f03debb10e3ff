#!/usr/bin/env bash
# Where the kny steps spend their time on a GPU, and what the alternatives
# change, in one run (bench/gpu_check.sh measures the defaults): profiles of
# the transformer and tokenizer steps and of one sampled continuation
# (bench/profile.py), the transformer step with the older remat policy and
# without dropout, sampling one row with and without the padding to two
# rows (sample.generate), at batch 16, and the tokenizer step with (2+1)-D
# convolutions and the latent layout, and issue 16's 1.1M candidates with
# both kinds of pixel layers (bench/tokenizer_arch.py). JSON lines go to
# $OUT/bench.jsonl, the Perfetto traces to $OUT/trace_*.json.gz, the logs to
# $OUT/logs.tgz.
#
#   OUT=/tmp/gpu bash bench/gpu_profile.sh [configs/kny.py]
#
# Every step uses random inputs (no dataset, no ffmpeg) and has its own time
# limit. Figures: README "Benchmarks".
set -u
OUT=${OUT:-/tmp/mirai_gpu}
CONFIG=${1:-configs/kny.py}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
rm -f "$OUT/bench.jsonl"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
start=$(date +%s)

BUDGET=${BUDGET:-480}  # seconds: later steps are skipped past it

run() {  # name limit_s command...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  if [ $(( t0 - start )) -gt "$BUDGET" ]; then
    echo "-- $name: skipped (over the ${BUDGET} s budget)"; return
  fi
  timeout "$limit" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log"
  local rc=$?
  grep -h '^{' "$LOGS/$name.out" | sed "s/^{/{\"run\": \"$name\", /" \
    | tee -a "$OUT/bench.jsonl"
  echo "-- $name: rc $rc, $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - start )) s)"
  [ $rc -eq 0 ] || tail -n 3 "$LOGS/$name.log"
  tar -czf "$OUT/logs.tgz" -C "$LOGS" .
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"

T="python3 bench/train_transformer.py --config=$CONFIG --steps=8"
S="python3 bench/sample_speed.py --config=$CONFIG --uncached=false --repeats=3"
P="python3 bench/profile.py --config=$CONFIG --out=$OUT"
run profile_transformer 150 $P --stage=transformer --steps=4
run transformer_remat_dots 120 $T --config.transformer.remat=dots
run transformer_no_dropout 120 $T --config.transformer.dropout=0
run sample_b1 90 $S
run sample_b1_one_row 90 $S --min_rows=1
run profile_tokenizer 120 $P --stage=tokenizer --steps=3
run sample_b16 90 $S --batch=16
run tokenizer_2plus1d_latent 120 python3 bench/train_tokenizer.py \
  --config="$CONFIG" --steps=8 --config.tokenizer.conv=2+1d \
  --config.tokenizer.layout=latent
run tokenizer_arch_issue16 150 python3 bench/tokenizer_arch.py \
  --archs=2+1d/latent/p2,2+1d/latent/p2/lin --params=1.1 --seconds=0 \
  --rounds=3 --recon=mse --vq_dim=256
run profile_sample 120 $P --stage=sample --steps=1
run transformer_unrolled 200 $T --config.transformer.unroll=12
echo "done in $(( $(date +%s) - start )) s"
