#!/usr/bin/env bash
# Ego4D-NLQ fine-tuning with UniVTG's moment-retrieval options (scripts/qvhl_pretrain.sh), ranked by R1@0.3
# as in UniVTG's model zoo. Start from a pretrained checkpoint with --resume (weights only).
# Annotations: python -m univtg_core.training.convert ego4d <official annotations> <jsonl>
# dset_name ego4d widens GT windows shorter than one clip, as UniVTG does; 8-minute clips, so a small eval_bsz.
# Usage: bash scripts/train_ego4d_nlq.sh [extra options]; NPROC=4 bash scripts/train_ego4d_nlq.sh for 4 GPUs (torchrun).
set -euo pipefail

dset_name=ego4d
source "$(dirname "$0")/_common.sh"

"${launcher[@]}" "${common_options[@]}" --exp_id ego4d \
  --train_path "${feat_root}/metadata/nlq_train.jsonl" \
  --eval_path "${feat_root}/metadata/nlq_val.jsonl" --eval_split_name val --eval_bsz 8 \
  --main_metric MR-full-R1@0.3-key "$@"
