#!/usr/bin/env bash
# Cloud TPU VMs (single- or multi-host): create or reuse, install, train on every worker, delete.
#
#   bash launch/tpu_vm.sh create  NAME ZONE ACCELERATOR   # e.g. my-v5p us-east5-a v5p-64
#   bash launch/tpu_vm.sh install NAME ZONE               # copies this checkout, pip installs [tpu]
#   bash launch/tpu_vm.sh mount   NAME ZONE BUCKET        # gcsfuse: gs://BUCKET at /gcs/BUCKET
#   bash launch/tpu_vm.sh train   NAME ZONE CONFIG /gcs/BUCKET/runs/NAME [overrides...]
#   bash launch/tpu_vm.sh delete  NAME ZONE
#
# `train` runs the same llmjp-train command on all workers (--worker=all); jax.distributed
# detects the pod. The workdir and the data must be one filesystem all workers share: `mount`
# puts a GCS bucket at /gcs/BUCKET on every worker with gcsfuse (ArrayRecord shards are read
# as files, and metrics are appended to a file, which plain gs:// paths do not allow).
set -euo pipefail
gcloud=${GCLOUD:-gcloud}
runtime=${TPU_RUNTIME:-v2-alpha-tpuv5}

usage() { sed -n '2,11p' "$0"; exit 2; }
[ $# -ge 3 ] || usage
action=$1 name=$2 zone=$3
shift 3

on_all_workers() {
  "$gcloud" compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all --command="$1"
}

case "$action" in
  create)
    accelerator=${1:?accelerator type, e.g. v5p-64}
    if "$gcloud" compute tpus tpu-vm describe "$name" --zone="$zone" >/dev/null 2>&1; then
      echo "reusing TPU VM $name"
    else
      "$gcloud" compute tpus tpu-vm create "$name" --zone="$zone" \
        --accelerator-type="$accelerator" --version="$runtime"
    fi
    ;;
  install)
    archive=$(mktemp --suffix=.tar.gz)
    git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
    "$gcloud" compute tpus tpu-vm scp "$archive" "$name":llmjp-jax.tar.gz --zone="$zone" --worker=all
    on_all_workers "mkdir -p llmjp-jax && tar -xzf llmjp-jax.tar.gz -C llmjp-jax && \
      cd llmjp-jax && python3 -m venv .venv && .venv/bin/pip install -q -e '.[tpu]'"
    rm -f "$archive"
    ;;
  mount)
    bucket=${1:?GCS bucket name, without gs://}
    on_all_workers "command -v gcsfuse >/dev/null || { \
      echo 'deb https://packages.cloud.google.com/apt gcsfuse-jammy main' | \
        sudo tee /etc/apt/sources.list.d/gcsfuse.list && \
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | \
        sudo tee /etc/apt/trusted.gpg.d/gcsfuse.asc >/dev/null && \
      sudo apt-get update -q && sudo apt-get install -yq gcsfuse; } && \
      sudo mkdir -p /gcs/$bucket && sudo chown \"\$USER\" /gcs/$bucket && \
      { mountpoint -q /gcs/$bucket || gcsfuse --implicit-dirs $bucket /gcs/$bucket; }"
    ;;
  train)
    config=${1:?config file}
    workdir=${2:?workdir on a filesystem shared by all workers}
    shift 2
    quoted=$(printf ' %q' "$@")
    on_all_workers "cd llmjp-jax && .venv/bin/llmjp-train --config=$config --workdir=$workdir$quoted"
    ;;
  delete)
    "$gcloud" compute tpus tpu-vm delete "$name" --zone="$zone" --quiet
    ;;
  *)
    usage
    ;;
esac
