"""A tiny randomly initialised CLIP behind the real `ClipEncoder` (frames, text, the video stream), for tests
that index long videos: the code paths do not depend on the size, and a frame costs about a millisecond."""

from __future__ import annotations

import open_clip
import torch

from univtg_core.encoders import ClipEncoder

TINY = {
    "embed_dim": 256,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def tiny_clip_encoder(seed: int = 0, embed_dim: int = 256) -> ClipEncoder:
    """Built directly (no entry in open_clip's global model list), deterministic for a seed."""
    config = {**TINY, "embed_dim": embed_dim}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**config, quick_gelu=True).eval()
    cfg = open_clip.transform.merge_preprocess_dict(open_clip.transform.PreprocessCfg(), {})
    cfg["size"] = model.visual.image_size
    open_clip.set_model_preprocess_cfg(model, cfg)
    return ClipEncoder(model, open_clip.get_tokenizer("ViT-B-32"), model_name="tiny", weights="random",
                       device=torch.device("cpu"), dtype=torch.float32, fingerprint=f"tiny-clip{embed_dim}-seed{seed}",
                       is_random=True)
