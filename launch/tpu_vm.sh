#!/usr/bin/env bash
# One mirai_jax command on every worker of a Cloud TPU VM slice (v4-32, v5e-64, ...).
#
#   launch/tpu_vm.sh setup TPU_NAME ZONE          # copy this checkout, pip install
#   launch/tpu_vm.sh run   TPU_NAME ZONE -- --config=configs/kny.py \
#       --workdir=gs://BUCKET/kny --config.data.data_dir=gs://BUCKET/tensorflow_datasets
#   launch/tpu_vm.sh mount TPU_NAME ZONE BUCKET   # optional: gcsfuse at /gcs/BUCKET
#
# Every worker runs the same command with --distributed=on: JAX finds the other
# workers from the TPU metadata, each reads its own rows of every batch, all take
# part in checkpoints and worker 0 writes the logs. The workdir and dataset must
# be visible to every worker at the same path: gs:// paths directly (Orbax
# writes checkpoints there, inputs are mirrored to each worker's disk), a
# bucket mounted with gcsfuse (`mount`), or a shared file system. Exit status
# 143 means preempted after a checkpoint: run the same `run` command again.
#
# PROJECT=... adds --project; DRY_RUN=1 prints the gcloud commands instead.
set -euo pipefail

usage() { sed -n '2,17p' "$0" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
action=$1 name=$2 zone=$3
shift 3
dest='~/mirai_jax'
gcloud_args=(--zone="$zone" --worker=all)
[[ -n "${PROJECT:-}" ]] && gcloud_args+=(--project="$PROJECT")

run() {
  if [[ -n "${DRY_RUN:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

ssh_all() {
  run gcloud compute tpus tpu-vm ssh "$name" "${gcloud_args[@]}" --command="$1"
}

case "$action" in
  setup)
    here=$(cd "$(dirname "$0")/.." && pwd)
    run gcloud compute tpus tpu-vm scp --recurse "$here" "$name:$dest" \
        "${gcloud_args[@]}"
    ssh_all "cd $dest && python3 -m pip install -q -e '.[tpu,gcs]'"
    ;;
  mount)
    [[ $# -eq 1 ]] || usage
    ssh_all "sudo mkdir -p /gcs/$1 && sudo chown \$USER /gcs/$1 && \
gcsfuse --implicit-dirs $1 /gcs/$1"
    ;;
  run)
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -ge 1 ]] || usage
    args=$(printf '%q ' "$@")
    ssh_all "cd $dest && python3 -m mirai_jax.main --distributed=on $args"
    ;;
  *) usage ;;
esac
