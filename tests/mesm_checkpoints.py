"""MESM checkpoints the tests write themselves (official format, random initialisation), and a MESM that
knows colours under random CLIP: trained by the real trainer on clip features of solid colours, so that an
image query finds the planted segment of a generated video through the CLI and the app.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


# Colours random ViT-B-32 keeps apart from one another (see /work/shared/MACHINE.md): the planted colours of
# the tests' videos, and distractors.
PALETTE = [(230, 20, 20), (0, 230, 230), (140, 20, 200), (20, 200, 20), (240, 200, 0), (255, 255, 255),
           (30, 30, 30), (250, 120, 0)]


def colour_features(encoder, colours) -> np.ndarray:
    """(C, 512) clip features of solid frames of each colour, as the indexer computes them."""
    size = encoder.image_size
    frames = np.stack([np.full((size, size, 3), c, dtype=np.uint8) for c in colours])
    return encoder.encode_frames(frames)


def write_colour_dataset(root: Path, encoder, n_videos: int = 96, clips: int = 15, seed: int = 0) -> dict:
    """Videos of three colour segments of 10 s (5 clips of 2 s, the layout of the tests' videos) and, for each,
    queries that are the image of one of its colours (its pseudo-inverse token, as the app encodes an image
    query): the query picks the segment, so the model must read it. Layout as tests/synthetic_data.py writes
    it."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    video_dir, text_dir = root / "clip_features", root / "clip_text"
    video_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    frames = colour_features(encoder, PALETTE)
    tokens = [encoder.encode_image(Image.new("RGB", (64, 64), c)).tokens for c in PALETTE]
    qid = 0
    paths = {}
    for split, count in (("train", n_videos), ("val", n_videos // 4)):
        lines = []
        for v in range(count):
            vid = f"{split}_{v:03d}"
            colours = rng.choice(len(PALETTE), 3, replace=False)
            third = clips // 3
            bounds = [(0, third), (third, 2 * third), (2 * third, clips)]
            feats = np.concatenate([np.repeat(frames[c][None], b - a, axis=0) for c, (a, b) in zip(colours, bounds)])
            feats = feats + rng.normal(scale=0.02 * np.abs(feats).mean(), size=feats.shape)
            np.savez(video_dir / f"{vid}.npz", features=feats.astype(np.float32))
            for c, (a, b) in zip(colours, bounds):
                np.savez(text_dir / f"{qid}.npz", last_hidden_state=tokens[c].astype(np.float32))
                lines.append({"qid": qid, "query": f"colour {c}", "vid": vid, "duration": clips * 2.0,
                              "relevant_windows": [[a * 2.0, b * 2.0]]})
                qid += 1
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(line) + "\n" for line in lines))
    return {"train": paths["train"], "val": paths["val"], "video_dir": video_dir, "text_dir": text_dir}


COLOUR_TRAINING = ["--hidden_dim", "64", "--dim_feedforward", "128", "--nheads", "4", "--num_recfw_layers", "1",
                   "--t2v_layers", "1", "--enc_layers", "1", "--dec_layers", "2", "--num_queries", "5",
                   "--num_recss_layers", "1", "--max_words_l", "32", "--max_video_l", "75", "--rec_ss",
                   "--loss_recss_coef", "0.1", "--aux_loss", "--use_tef", "--normalize_video", "--normalize_txt",
                   "--clip_len", "2", "--dataset_name", "charades", "--input_dropout", "0.1", "--dropout", "0",
                   "--batch_size", "4", "--lr", "1e-3", "--lr_drop", "12", "--num_workers", "0", "--device", "cpu",
                   "--no_progress"]


def train_colour_mesm(root: Path, epochs: int = 6) -> Path:
    """The real trainer on `write_colour_dataset`: returns its model_best.ckpt (MESM's official format)."""
    from univtg_core.encoders import load_clip_encoder
    from univtg_core.training.loop import train
    from univtg_core.training.options import parse_options

    best = root / "run" / "model_best.ckpt"
    if best.is_file():
        return best
    encoder = load_clip_encoder("ViT-B-32", weights="random", device="cpu", seed=0)
    data = write_colour_dataset(root / "data", encoder)
    opt = parse_options(["--model_id", "mesm", "--train_path", str(data["train"]), "--eval_path", str(data["val"]),
                         "--feat_files", str(data["video_dir"]), "--t_feat_dir", str(data["text_dir"]),
                         "--results_dir", str(root / "run"), "--n_epoch", str(epochs), "--eval_epoch",
                         str(epochs), *COLOUR_TRAINING])
    train(opt)
    return best
