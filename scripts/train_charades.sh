#!/usr/bin/env bash
# Charades-STA fine-tuning with UniVTG's moment-retrieval options (scripts/qvhl_pretrain.sh), ranked by R1@0.3
# as in UniVTG's model zoo. Start from a pretrained checkpoint with --resume (weights only).
# Annotations: python -m univtg_core.training.convert charades <official annotations> <jsonl>
# The clip length is read from the data (durations / feature rows); add --clip_length to force it.
# Usage: bash scripts/train_charades.sh [extra options]; NPROC=4 bash scripts/train_charades.sh for 4 GPUs (torchrun).
set -euo pipefail

dset_name=charades
source "$(dirname "$0")/_common.sh"

"${launcher[@]}" "${common_options[@]}" --exp_id charades \
  --train_path "${feat_root}/metadata/charades_train.jsonl" \
  --eval_path "${feat_root}/metadata/charades_test.jsonl" --eval_split_name test --eval_bsz 32 \
  --main_metric MR-full-R1@0.3-key "$@"
