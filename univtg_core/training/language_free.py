"""Language-free zero-shot training (Kim et al., "Language-free Training for Zero-shot Video Grounding",
WACV 2023) on top of UniVTG.

No query text is used for training. For each video:

1. Pseudo-moments come from unsupervised temporal proposals: event boundaries are placed where consecutive
   clips change (cosine distance above an Otsu threshold of the video's change curve); a pseudo-moment is
   one event of at least two clips, or two neighbouring ones.
2. The pseudo-query is built from CLIP image features of clips inside the moment: `num_frames` (9 in the
   paper) are sampled, Gaussian noise (sigma 0.04) is added and the result re-normalised, and a small
   selection transformer picks one with a straight-through Gumbel-softmax. The pick is trained end to end
   by the grounding losses.
3. At test time the real CLIP text embedding of the query (the sentence / pooler output) replaces it,
   which works because CLIP's image and text spaces are aligned.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..postprocess import l2_normalize
from .data import DataError, FeatureStore, GroundingDataset


def boundary_scores(feats: np.ndarray) -> np.ndarray:
    """Cosine distance between consecutive clips: (L, D) -> (L - 1,); entry i is the change after clip i."""
    feats = l2_normalize(np.asarray(feats, dtype=np.float32))
    if len(feats) < 2:
        return np.zeros(0, dtype=np.float32)
    return 1.0 - np.sum(feats[1:] * feats[:-1], axis=1)


def change_threshold(change: np.ndarray) -> float:
    """Otsu's split of the change values into within-event and between-event groups."""
    values = np.sort(np.asarray(change, dtype=np.float64))
    if values.size < 2 or values[-1] - values[0] < 1e-6:
        return float("inf")
    best, threshold = -1.0, float(values[-1])
    for k in range(1, values.size):
        low, high = values[:k], values[k:]
        between = low.size * high.size * (low.mean() - high.mean()) ** 2
        if between > best:
            best, threshold = between, float((values[k - 1] + values[k]) / 2)
    return threshold


def temporal_events(feats: np.ndarray) -> list[tuple[int, int]]:
    """Split a video into events [first, last] (inclusive) wherever consecutive clips change more than the
    Otsu threshold of the change curve: coherent runs of clips become one event each."""
    n = len(feats)
    change = boundary_scores(feats)
    threshold = change_threshold(change)
    starts = [0] + [i + 1 for i, c in enumerate(change) if c >= threshold] + [n]
    return [(starts[i], starts[i + 1] - 1) for i in range(len(starts) - 1)]


def temporal_proposals(feats: np.ndarray, min_clips: int = 2, max_ratio: float = 0.6) -> list[tuple[int, int]]:
    """Pseudo-moments [first, last] (inclusive): events of at least `min_clips` clips, and unions of two such
    events separated by at most one clip, no longer than `max_ratio` of the video.

    A video without such an event yields its middle half, so every video gives at least one proposal.
    """
    n = len(feats)
    longest = max(min_clips, int(math.floor(max_ratio * n)))
    events = [e for e in temporal_events(feats) if e[1] - e[0] + 1 >= min_clips]
    proposals = [e for e in events if e[1] - e[0] + 1 <= longest]
    for a, b in zip(events, events[1:]):
        if b[0] - a[1] <= 2 and b[1] - a[0] + 1 <= longest:
            proposals.append((a[0], b[1]))
    if not proposals:
        quarter = n // 4
        proposals.append((quarter, min(n - 1, quarter + max(min_clips, n // 2) - 1)))
    return proposals


def sample_candidates(feats: np.ndarray, first: int, last: int, num_frames: int = 9,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """`num_frames` clip features from inside [first, last]: a random subset, or evenly spaced repeats."""
    rng = rng or np.random.default_rng()
    inside = feats[first : last + 1]
    if len(inside) > num_frames:
        idx = np.sort(rng.choice(len(inside), num_frames, replace=False))
    else:
        idx = np.linspace(0, len(inside) - 1, num_frames).astype(int)
    return inside[idx]


def add_noise(candidates: torch.Tensor, sigma: float = 0.04) -> torch.Tensor:
    """Normalise, add N(0, sigma^2) noise, re-normalise (the paper's feature perturbation)."""
    candidates = candidates / candidates.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    noisy = candidates + torch.randn_like(candidates) * sigma
    return noisy / noisy.norm(dim=-1, keepdim=True).clamp(min=1e-8)


class SelectionTransformer(nn.Module):
    """Picks one of N candidate features: a small transformer scores them; straight-through Gumbel-softmax
    makes the pick differentiable in training, argmax in eval. Input (B, N, D) -> output (B, D)."""

    def __init__(self, input_dim: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Linear(input_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=d_model, dropout=dropout,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.score = nn.Linear(d_model, 1)
        self.scale = math.sqrt(d_model)

    def forward(self, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.score(self.encoder(self.embed(candidates) * self.scale)).squeeze(-1)
        if self.training:
            choice = F.gumbel_softmax(logits, dim=1, hard=True)
        else:
            choice = F.one_hot(logits.argmax(dim=1), logits.shape[1]).to(candidates.dtype)
        return (choice.unsqueeze(-1) * candidates).sum(dim=1), choice


class PseudoQueryEncoder(nn.Module):
    """Candidates (B, N, D) -> pseudo-query tokens (B, 1, D) and their mask, with the paper's noise."""

    def __init__(self, input_dim: int, d_model: int = 128, noise: float = 0.04):
        super().__init__()
        self.selector = SelectionTransformer(input_dim, d_model)
        self.noise = noise

    def forward(self, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noisy = add_noise(candidates.float(), self.noise) if self.training else candidates.float()
        selected, _ = self.selector(noisy)
        tokens = selected.unsqueeze(1)
        return tokens, torch.ones(tokens.shape[:2], device=tokens.device)


def pick_clip_feature_dir(v_feat_dirs: Sequence[str], text_dim: int, store: FeatureStore, vid: str,
                          requested: str | None = None) -> str:
    """The features pseudo-queries are built from: `requested`, else a dir named *clip* as wide as the text
    features, else the first dir as wide as them. Raises DataError naming the widths when none fits."""
    if requested:
        return requested
    widths = {d: store.read_video_dir(d, vid, normalize=False).shape[1] for d in v_feat_dirs}
    fits = [d for d, w in widths.items() if w == text_dim]
    named = [d for d in fits if "clip" in d.rstrip("/").split("/")[-1].lower()]
    if named or fits:
        return (named or fits)[0]
    raise DataError(f"--language_free needs CLIP image features as wide as the text features ({text_dim}); "
                    f"the video feature widths are {widths}. Pass --lf_feat_dir")


class LanguageFreeDataset(GroundingDataset):
    """One item per (video, pseudo-moment): the video input, labels of the pseudo-moment, and the
    `lf_candidates` the pseudo-query is chosen from. Query text and GT windows are never read."""

    def __init__(self, records: Sequence[dict], store: FeatureStore, clip_feat_dir: str, clip_len: float,
                 moments_per_video: int = 4, num_frames: int = 9, min_clips: int = 2, max_ratio: float = 0.6,
                 **kwargs):
        videos: dict[str, dict] = {}
        for record in records:
            videos.setdefault(str(record["vid"]), record)
        super().__init__(list(videos.values()), store, clip_len, **kwargs)
        self.clip_feat_dir = clip_feat_dir
        self.moments_per_video = moments_per_video
        self.num_frames = num_frames
        self.min_clips = min_clips
        self.max_ratio = max_ratio
        self._proposals: dict[str, list[tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self.records) * self.moments_per_video

    def proposals(self, vid: str, clip_feats: np.ndarray) -> list[tuple[int, int]]:
        if vid not in self._proposals:
            self._proposals[vid] = temporal_proposals(clip_feats, self.min_clips, self.max_ratio)
        return self._proposals[vid]

    def __getitem__(self, index: int) -> dict:
        video = self.records[index % len(self.records)]
        vid = str(video["vid"])
        feats = self.video_features(video) if self.use_video else None
        clip_feats = self.store.dir_features(self.clip_feat_dir, vid)
        n_clips = len(feats) if feats is not None else len(clip_feats)
        clip_feats = clip_feats[:n_clips]
        first, last = random.choice(self.proposals(vid, clip_feats))
        duration = float(video.get("duration", n_clips * self.clip_len))
        pseudo = {"qid": f"lf_{vid}_{first}_{last}", "vid": vid, "duration": duration,
                  "relevant_windows": [[first * self.clip_len, min((last + 1) * self.clip_len, duration)]]}
        candidates = sample_candidates(clip_feats, first, last, self.num_frames,
                                       np.random.default_rng(np.random.randint(2**31)))
        item = {"meta": pseudo,
                "video_feat": torch.from_numpy(np.ascontiguousarray(self.video_input(feats, n_clips))),
                "lf_candidates": torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.float32))}
        item.update(self.targets(pseudo, n_clips))
        return item
