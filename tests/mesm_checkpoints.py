"""MESM checkpoints the tests write themselves (official format, random initialisation)."""

from __future__ import annotations

from pathlib import Path

import torch

from univtg_core.models.mesm import MESM, MESMConfig, save_mesm_checkpoint

# A CLIP-only (512-d video, CLIP text) MESM, small: what the app and the CLI can run on a user's video.
CLIP_ONLY = dict(v_feat_dim=514, t_feat_dim=512, hidden_dim=32, nheads=4, dim_feedforward=64, num_recfw_layers=1,
                 t2v_layers=1, enc_layers=1, dec_layers=2, num_queries=5, max_words_l=32, max_video_l=75,
                 num_recss_layers=1, vocab_size=40, clip_len=2.0, dataset_name="qvhighlights",
                 video_sources=(("clip", 512),))
# The released Charades-STA "C+SF, C" shape (CLIP + SlowFast video), shrunk: what no front end can run.
CLIP_SLOWFAST = dict(CLIP_ONLY, v_feat_dim=2818, clip_len=1.0, dataset_name="charades",
                     video_sources=(("clip", 512), ("slowfast", 2304)))
VGG_GLOVE = dict(CLIP_ONLY, v_feat_dim=4098, t_feat_dim=300, text_path="glove_pkl", clip_len=1.0,
                 dataset_name="charades", video_sources=(("vgg", 4096),))


def write_mesm(path: str | Path, seed: int = 0, **config) -> Path:
    """A random-init MESM of `config` (default CLIP_ONLY) saved as the official training script saves it."""
    torch.manual_seed(seed)
    model = MESM(MESMConfig(**(config or CLIP_ONLY)))
    return save_mesm_checkpoint(path, model, {"lr": 2e-4}, epoch=0)
