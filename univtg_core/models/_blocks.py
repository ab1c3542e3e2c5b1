"""Building blocks the architectures share (UniVTG, and the DETR-style models of the same lineage).

Attribute names (`LayerNorm`, `net.1`, `position_embeddings`, `layers.N`) are the official ones, so that
official checkpoints load with strict=True into modules built from these blocks. Spans are (N, ..., 2)
tensors, either [start, end] ("xx") or [centre, width] ("cxw"), in whatever unit the caller uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------------------------------------------
# Position embeddings
def sine_position_embedding(mask: torch.Tensor, dim: int, temperature: float = 10000.0,
                            normalize: bool = True, scale: float = 2 * math.pi) -> torch.Tensor:
    """1-D sine embedding of the mask's cumulative sum: (B, L) mask -> (B, L, dim).

    With `normalize` the positions are cumsum / (last cumsum + 1e-6) * scale, i.e. normalised by each row's
    valid length (padded slots repeat the last valid position). Features interleave [sin f0, cos f1, ...]
    with frequencies temperature ** (2 * floor(j / 2) / dim), as DETR's PositionEmbeddingSine.
    """
    position = mask.cumsum(1, dtype=torch.float32)
    if normalize:
        position = position / (position[:, -1:] + 1e-6) * scale
    index = torch.arange(dim, dtype=torch.float32, device=mask.device)
    freq = temperature ** (2 * torch.div(index, 2).int() / dim)
    angles = position[:, :, None] / freq
    return torch.stack((angles[:, :, 0::2].sin(), angles[:, :, 1::2].cos()), dim=3).flatten(2)


def sine_anchor_embedding(anchors: torch.Tensor, feats_per_coord: int, temperature: float = 10000.0) -> torch.Tensor:
    """(..., C) anchors in [0, 1] -> (..., C * feats_per_coord): per coordinate, (value * 2pi) / T^(2 floor(j/2)/F)
    with sine and cosine interleaved, coordinates concatenated (center first): DAB-DETR's anchor embedding."""
    dim_t = torch.arange(feats_per_coord, dtype=torch.float32, device=anchors.device)
    dim_t = temperature ** (2 * (dim_t // 2) / feats_per_coord)
    parts = []
    for c in range(anchors.shape[-1]):
        angles = (anchors[..., c] * (2 * math.pi))[..., None] / dim_t
        parts.append(torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)


class TrainablePositionEmbedding(nn.Module):
    """Learned positions added to the tokens, then LayerNorm and dropout (Moment-DETR's text positions).

    The output includes the token content: official models add it to queries and keys as the "position".
    """

    def __init__(self, max_len: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.position_embeddings = nn.Embedding(max_len, hidden_dim)
        self.LayerNorm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.dropout(self.LayerNorm(tokens + self.position_embeddings(positions)[None]))


# ------------------------------------------------------------------------------------------------------
# Projections and heads
class LinearLayer(nn.Module):
    """[LayerNorm] -> Dropout -> Linear -> optional ReLU; the Linear sits at `net.1`, as in official keys."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1, relu: bool = True, layer_norm: bool = True):
        super().__init__()
        self.relu = relu
        self.layer_norm = layer_norm
        if layer_norm:
            self.LayerNorm = nn.LayerNorm(in_dim)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            x = self.LayerNorm(x)
        x = self.net(x)
        return F.relu(x) if self.relu else x


def projector(in_dim: int, hidden_dim: int, depth: int, dropout: float, relu: Sequence[bool] | None = None,
              layer_norm: bool = True, built: int = 3) -> nn.Sequential:
    """A stack of `depth` LinearLayers (in_dim -> hidden_dim -> ... -> hidden_dim).

    `relu` gives each layer's ReLU flag (default: all but the last layer used, the official pattern).
    The official models build `built` (3) layers and keep the first `depth`; we build them all too, so that
    the same seed draws the same initial weights as the official code.
    """
    if not 1 <= depth <= built:
        raise ValueError(f"projector depth must be 1..{built}; got {depth}")
    if relu is None:
        relu = [i != depth - 1 for i in range(built)]
    relu = list(relu) + [True] * (built - len(relu))
    dims = [in_dim] + [hidden_dim] * (built - 1)
    layers = [LinearLayer(dims[i], hidden_dim, dropout, relu[i], layer_norm) for i in range(built)]
    return nn.Sequential(*layers[:depth])


class MLP(nn.Module):
    """Linear layers with ReLU between them (DETR's MLP; keys `layers.N`)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        hidden = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip([in_dim] + hidden, hidden + [out_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class ConvStack(nn.Module):
    """Conv1d layers over time (B, L, D) -> (B, L, out) with ReLU between them (keys `layers.N`).

    The convolutions run over the whole padded sequence, so the last valid steps see the padding, as in
    the official UniVTG heads.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3, kernel_size: int = 3):
        super().__init__()
        hidden = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Conv1d(i, o, kernel_size=kernel_size, padding=kernel_size // 2)
            for i, o in zip([in_dim] + hidden, hidden + [out_dim])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x.permute(0, 2, 1)


# ------------------------------------------------------------------------------------------------------
# Small functions
def mask_logits(inputs: torch.Tensor, mask: torch.Tensor, mask_value: float = -1e30) -> torch.Tensor:
    """Add `mask_value` where mask is 0 (before a softmax)."""
    return inputs + (1.0 - mask.float()) * mask_value


def drop_path(x: torch.Tensor, prob: float, training: bool, batch_dim: int = 0) -> torch.Tensor:
    """Stochastic depth: drop whole samples (along `batch_dim`) with probability `prob` in training."""
    if prob == 0.0 or not training:
        return x
    keep = 1 - prob
    shape = [1] * x.ndim
    shape[batch_dim] = x.shape[batch_dim]
    mask = torch.floor(keep + torch.rand(shape, dtype=x.dtype, device=x.device))
    return x / keep * mask


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """log(x / (1 - x)) with x clamped to [0, 1] and both terms floored at eps (DAB-DETR's)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


# ------------------------------------------------------------------------------------------------------
# Spans
def span_cxw_to_xx(spans: torch.Tensor) -> torch.Tensor:
    """[centre, width] -> [start, end]."""
    centre, width = spans[..., 0], spans[..., 1]
    return torch.stack([centre - 0.5 * width, centre + 0.5 * width], dim=-1)


def span_xx_to_cxw(spans: torch.Tensor) -> torch.Tensor:
    """[start, end] -> [centre, width]."""
    start, end = spans[..., 0], spans[..., 1]
    return torch.stack([(start + end) / 2, end - start], dim=-1)


def temporal_iou_matrix(spans1: torch.Tensor, spans2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of [start, end] spans: (N, 2) x (M, 2) -> (N, M), (N, M)."""
    left = torch.max(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.min(spans1[:, None, 1], spans2[None, :, 1])
    inter = (right - left).clamp(min=0)
    union = (spans1[:, 1] - spans1[:, 0])[:, None] + (spans2[:, 1] - spans2[:, 0])[None, :] - inter
    return inter / union, union


def generalized_temporal_iou(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """Pairwise GIoU of [start, end] spans (N, 2) x (M, 2) -> (N, M), as in the Hungarian matchers."""
    spans1, spans2 = spans1.float(), spans2.float()
    iou, union = temporal_iou_matrix(spans1, spans2)
    left = torch.min(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.max(spans1[:, None, 1], spans2[None, :, 1])
    enclosing = (right - left).clamp(min=0)
    return iou - (enclosing - union) / enclosing


def generalized_temporal_iou_pairs(spans1: torch.Tensor, spans2: torch.Tensor) -> torch.Tensor:
    """GIoU of matching rows of two (N, 2) [start, end] tensors: the diagonal of the pairwise matrix."""
    spans1, spans2 = spans1.float(), spans2.float()
    inter = (torch.min(spans1[:, 1], spans2[:, 1]) - torch.max(spans1[:, 0], spans2[:, 0])).clamp(min=0)
    union = (spans1[:, 1] - spans1[:, 0]) + (spans2[:, 1] - spans2[:, 0]) - inter
    enclosing = (torch.max(spans1[:, 1], spans2[:, 1]) - torch.min(spans1[:, 0], spans2[:, 0])).clamp(min=0)
    return inter / union - (enclosing - union) / enclosing
