# Shared by the train_*.sh launchers (sourced; set dset_name first): feature folders from V_FEAT_TYPES,
# python or torchrun from NPROC, and UniVTG's moment-retrieval options (its scripts/qvhl_pretrain.sh).
# DRY_RUN=1 prints the command instead of running it.
feat_root=${FEAT_ROOT:-data/${dset_name}}
v_feat_types=${V_FEAT_TYPES:-slowfast_clip}   # any of slowfast, i3d, c3d, clip, joined by _
results_dir=${RESULTS_DIR:-results/mr-${dset_name}/${v_feat_types}}

v_feat_dirs=()
for kind in slowfast i3d c3d clip; do
  if [[ ${v_feat_types} == *${kind}* ]]; then v_feat_dirs+=("${feat_root}/vid_${kind}"); fi
done
# Feature widths are read from the files (UniVTG needed --v_feat_dim / --t_feat_dim here).

launcher=(python -m univtg_core.training)
if [[ ${NPROC:-1} -gt 1 ]]; then launcher=(torchrun --nproc_per_node "${NPROC}" -m univtg_core.training); fi
if [[ -n ${DRY_RUN:-} ]]; then launcher=(echo "${launcher[@]}"); fi

common_options=(
  --dset_type mr --dset_name "${dset_name}" --model_id univtg
  --v_feat_types "${v_feat_types}" --t_feat_type clip --ctx_mode video_tef
  --v_feat_dirs "${v_feat_dirs[@]}" --t_feat_dir "${feat_root}/txt_clip"
  --results_dir "${results_dir}" --num_workers 4
  --bsz 32 --n_epoch 200 --lr 1e-4 --lr_drop 80 --lr_warmup 10 --wd 1e-4
  --input_dropout 0.5 --dropout 0 --droppath 0.1 --enc_layers 4 --hidden_dim 1024
  --eval_epoch 5 --round_multiple -1 --use_cache 1 --easy_negative_only 1
  --b_loss_coef 10 --g_loss_coef 1 --eos_coef 0.1 --f_loss_coef 10
  --s_loss_intra_coef 0.05 --s_loss_inter_coef 0.01
  --nms_thd 0.7 --max_before_nms 1000
)
