#!/usr/bin/env bash
# QVHighlights fine-tuning: UniVTG's scripts/qvhl_pretrain.sh with the program name changed.
# Usage: bash scripts/train_qvhighlights.sh [extra options, e.g. --resume results/pt/model_best.ckpt]
#   NPROC=4 bash scripts/train_qvhighlights.sh   # one node, 4 GPUs (torchrun; --bsz is per GPU)
set -euo pipefail

dset_name=qvhighlights
source "$(dirname "$0")/_common.sh"

"${launcher[@]}" "${common_options[@]}" --exp_id qvhl \
  --train_path "${feat_root}/metadata/qvhighlights_train.jsonl" \
  --eval_path "${feat_root}/metadata/qvhighlights_val.jsonl" --eval_split_name val --eval_bsz 4 \
  --main_metric MR-full-mAP-key --clip_length 2 --eval_mode add --eval_init "$@"
