#!/usr/bin/env bash
# TACoS fine-tuning with UniVTG's moment-retrieval options (scripts/qvhl_pretrain.sh), ranked by R1@0.3
# as in UniVTG's model zoo. Start from a pretrained checkpoint with --resume (weights only).
# Annotations: python -m univtg_core.training.convert tacos <official annotations> <jsonl>
# The clip length is read from the data (durations / feature rows); add --clip_length to force it.
# Usage: bash scripts/train_tacos.sh [extra options]; NPROC=4 bash scripts/train_tacos.sh for 4 GPUs (torchrun).
set -euo pipefail

dset_name=tacos
feat_root=${FEAT_ROOT:-data/${dset_name}}
v_feat_types=${V_FEAT_TYPES:-slowfast_clip}   # any of slowfast, i3d, c3d, clip, joined by _
results_dir=${RESULTS_DIR:-results/mr-${dset_name}/${v_feat_types}}

v_feat_dirs=()
[[ ${v_feat_types} == *slowfast* ]] && v_feat_dirs+=("${feat_root}/vid_slowfast")
[[ ${v_feat_types} == *i3d* ]] && v_feat_dirs+=("${feat_root}/vid_i3d")
[[ ${v_feat_types} == *c3d* ]] && v_feat_dirs+=("${feat_root}/vid_c3d")
[[ ${v_feat_types} == *clip* ]] && v_feat_dirs+=("${feat_root}/vid_clip")

launcher=(python -m univtg_core.train)
[[ ${NPROC:-1} -gt 1 ]] && launcher=(torchrun --nproc_per_node "${NPROC}" -m univtg_core.train)

"${launcher[@]}" \
  --dset_type mr --dset_name ${dset_name} \
  --exp_id ${dset_name} --model_id univtg --v_feat_types ${v_feat_types} --t_feat_type clip --ctx_mode video_tef \
  --train_path ${feat_root}/metadata/train.jsonl \
  --eval_path ${feat_root}/metadata/test.jsonl --eval_split_name test \
  --v_feat_dirs "${v_feat_dirs[@]}" --t_feat_dir ${feat_root}/txt_clip \
  --results_dir "${results_dir}" --num_workers 4 \
  --bsz 32 --eval_bsz 32 --n_epoch 200 --lr 1e-4 --lr_drop 80 --lr_warmup 10 --wd 1e-4 \
  --input_dropout 0.5 --dropout 0 --droppath 0.1 --enc_layers 4 --hidden_dim 1024 \
  --eval_epoch 5 --round_multiple -1 --use_cache 1 --easy_negative_only 1 \
  --b_loss_coef 10 --g_loss_coef 1 --eos_coef 0.1 --f_loss_coef 10 \
  --s_loss_intra_coef 0.05 --s_loss_inter_coef 0.01 \
  --main_metric MR-full-R1@0.3-key --nms_thd 0.7 --max_before_nms 1000 "$@"
