"""Small RGNet checkpoints in the official training-script format, for the tests (no fixture needed)."""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from univtg_core.models.rgnet import RGNet, RGNetConfig


def official_checkpoint(config: RGNetConfig, seed: int, **opt) -> dict:
    """A checkpoint as the official train() writes it: {model, optimizer, lr_scheduler, epoch, opt}, with every
    bias perturbed so that none of them is the untested constant of a fresh init."""
    torch.manual_seed(seed)
    model = RGNet(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.05)
    options = {f: getattr(config, f) for f in ("t_feat_dim", "v_motion_feat_dim", "v_appear_feat_dim", "hidden_dim",
                                               "nheads", "enc_layers", "dec_layers", "dim_feedforward", "num_queries",
                                               "max_q_l", "max_v_l", "pos_temperature", "use_txt_pos", "pre_norm",
                                               "adapter_module", "qddetr", "dabdetr", "gumbel", "gumbel_2",
                                               "gumbel_3", "gumbel_single_proj", "gumbel_eps", "decoder_gating",
                                               "multiscale", "dset_name", "clip_length", "n_input_proj")}
    options.update(device=torch.device("cuda"), lr_drop=[120], winret=False, topk_window=20, **opt)
    return {"model": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]},
            "lr_scheduler": {"milestones": Counter({120: 1}), "gamma": 0.1, "last_epoch": 0},
            "epoch": 9, "opt": argparse.Namespace(**options)}
