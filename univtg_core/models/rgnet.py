"""RGNet (Tanveer81/RGNet, ECCV'24): window retrieval and grounding in one network, laid out so that the official
checkpoints load with strict=True for every configuration the official code can run.

One forward reads a window of frames and a query: a text-to-video encoder updates the frames from the text, a
gate ("sparse attention", Gumbel-sigmoid in training) marks the frames that matter, an encoder over
[retrieval token, frames] lets the token read the window (gated-off frames attend less to themselves), the
token's output scores the window (`prob_soft`, a logit) and is added to the gated-on frames, and a DETR or
DAB anchor decoder predicts spans. Settings keep the official option names (`RGNetConfig`); the official
quirks are kept except one, the text-mask layout of the text-to-video encoder (see `official_mask_layout`).

The long-video inference (window grid, retrieval ranking, CLIP-matching re-scoring, fusion, NMS) lives in
`rgnet_inference`; the losses in `univtg_core.training.rgnet_losses`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import pick_device
from ..errors import CheckpointError, QueryError
from ..weights import read_weights, state_dict_of
from ._blocks import MLP, TrainablePositionEmbedding, inverse_sigmoid, projector, sine_position_embedding
from ._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput
from ._registry import Architecture, CheckpointContents, register
from .dab_decoder import AnchorDecoder, AnchorDecoderLayer

logger = logging.getLogger(__name__)

# Globals an official RGNet checkpoint pickles besides tensors (its `opt`, the scheduler's milestones, the
# device in `opt`); torch >= 2.6 already allows the last two, older versions need them named.
SAFE_GLOBALS = [argparse.Namespace, Counter, torch.device]

# Feature names by width, for the front ends (`InputSpec`): RGNet's released features.
_VIDEO_SOURCES = {"mad": "clip", "ego4d": "egovlp"}
_TEXT_SOURCES = {512: "clip_tokens", 768: "roberta_tokens", 256: "egovlp_tokens"}


@dataclass(frozen=True)
class RGNetConfig:
    """Architecture and inference settings under the official option names (rgnet/config.py)."""

    t_feat_dim: int = 512
    v_motion_feat_dim: int = 512  # the model's video input
    v_appear_feat_dim: int = 512  # the CLIP-matching features (the same features in every released setup)
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 2  # text-to-video encoder and window encoder alike
    dec_layers: int = 6
    dec_layers_2: int = 2  # the video decoder of --decoder_gating
    dim_feedforward: int = 1024
    dropout: float = 0.1
    input_dropout: float = 0.5
    n_input_proj: int = 2
    num_queries: int = 5
    max_q_l: int = 20
    max_v_l: int = 90  # frames per window
    pos_temperature: float = 10000.0
    use_txt_pos: bool = False
    pre_norm: bool = False
    aux_loss: bool = True
    span_loss_type: str = "l1"
    position_embedding: str = "sine"
    adapter_module: str = "none"  # "linear": residual MLP on the CLIP-matching features (Ego4D)
    qddetr: bool = False  # retrieval token + text-to-video encoder
    decoder_gating: bool = False  # decode from the text, then from the video (DETR decoder only)
    dabdetr: bool = False  # anchor decoder instead of the DETR decoder
    gumbel: bool = False  # gate from the text-to-video output (the retrieval token's encoder mask)
    gumbel_2: bool = False  # gated-off frames attend less to themselves; gated-on frames get the token added
    gumbel_3: bool = False  # use the gate after the encoder
    gumbel_single_proj: bool = False  # gumbel_3 reuses the first gate instead of a second projection
    gumbel_eps: float = 0.66667  # temperature of the straight-through sigmoid in training
    multiscale: bool = False  # decoder reads 4 average-pooled levels
    winret_neg_loss: bool = False  # class head also reads the retrieval token
    # Data, inference and the one deliberate change.
    dset_name: str = "mad"
    clip_length: float = 0.2  # seconds per feature row as the model reads them (after input_fps_reduction)
    input_fps_reduction: int = 1
    normalize_text: bool = True
    topk_window: int = 30  # windows kept by the retrieval score (the inference scripts: 30 MAD, 20 Ego4D)
    topk_span: int = 5
    nms_thd: float = 0.5
    max_before_nms: int = 200
    max_after_nms: int = 100
    official_mask_layout: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RGNetConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self) -> RGNetConfig:
        """Refuse the settings the official code cannot run (it crashes on them), naming them."""
        problems = []
        if self.span_loss_type != "l1":
            problems.append(f"span_loss_type={self.span_loss_type!r}: the official parser accepts only 'l1'")
        if self.position_embedding != "sine":
            problems.append(f"position_embedding={self.position_embedding!r}: the official builder has only 'sine'")
        if self.adapter_module not in ("none", "linear"):
            problems.append(f"adapter_module={self.adapter_module!r}: must be 'none' or 'linear'")
        if self.hidden_dim % self.nheads:
            problems.append(f"hidden_dim={self.hidden_dim} is not divisible by nheads={self.nheads}")
        if not 1 <= self.n_input_proj <= 3:
            problems.append(f"n_input_proj={self.n_input_proj}: must be 1, 2 or 3")
        for name in ("enc_layers", "dec_layers", "num_queries", "max_v_l", "max_q_l"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)}: must be at least 1")
        if self.decoder_gating and self.dec_layers_2 < 1:
            problems.append(f"dec_layers_2={self.dec_layers_2}: --decoder_gating needs at least 1")
        if self.dabdetr and self.hidden_dim != 256:
            problems.append(f"hidden_dim={self.hidden_dim} with dabdetr: the official anchor decoder's sine "
                            f"embedding has 2 x 128 features, so it only runs at hidden_dim 256")
        if self.dabdetr and self.decoder_gating:
            problems.append("dabdetr with decoder_gating: the official anchor decoder cannot decode from the text")
        if self.qddetr and self.pre_norm:
            problems.append("pre_norm with qddetr: the official pre-norm text-to-video layer is hard-wired to 75 "
                            "frames and fails")
        if self.gumbel and not self.qddetr and not self.gumbel_3:
            problems.append("gumbel without qddetr: the official encoder gate needs the retrieval token")
        if self.gumbel_3 and self.gumbel_single_proj and not (self.gumbel and self.qddetr):
            problems.append("gumbel_3 with gumbel_single_proj reuses the encoder gate, which needs gumbel and qddetr")
        if self.gumbel_3 and self.gumbel_2 and not self.qddetr:
            problems.append("gumbel_2 with gumbel_3 adds the retrieval token to the frames, which needs qddetr")
        if self.multiscale and self.gumbel_3 and not self.dabdetr and not self.decoder_gating:
            problems.append("multiscale with gumbel_3 and the DETR decoder: the official gate mask does not fit "
                            "the pooled levels")
        if self.winret_neg_loss and not self.qddetr:
            problems.append("winret_neg_loss reads the retrieval token, which needs qddetr")
        if self.pos_temperature <= 0 or self.gumbel_eps <= 0:
            problems.append("pos_temperature and gumbel_eps must be positive")
        if problems:
            raise CheckpointError("unsupported RGNet settings: " + "; ".join(problems))
        return self

    @property
    def input_spec(self) -> InputSpec:
        """The features this checkpoint reads (load_model refuses other widths before building): CLIP (MAD) or
        EgoVLP (Ego4D) frames at `clip_length` seconds each, windows of `max_v_l` frames."""
        video = _VIDEO_SOURCES.get(self.dset_name, "clip" if self.v_motion_feat_dim == 512 else "egovlp")
        # MAD's text is CLIP's per-token rows at whatever width its CLIP has (as its video is CLIP's); other
        # datasets' text is named by its width (RoBERTa 768, EgoVLP 256, CLIP 512).
        text = "clip_tokens" if video == "clip" else _TEXT_SOURCES.get(self.t_feat_dim, f"tokens{self.t_feat_dim}")
        return InputSpec(video=(FeatureSource(video, self.v_motion_feat_dim),),
                         text=FeatureSource(text, self.t_feat_dim), clip_len=self.clip_length, window=self.max_v_l)

    @property
    def has_retrieval(self) -> bool:
        """Whether the window-retrieval score (`prob_soft`) exists."""
        return self.qddetr


# ---------------------------------------------------------------------------------------------------- blocks
class GumbelGate(nn.Module):
    """Hard 0/1 gate from a logit: [logit >= 0] in eval; in training [sigmoid((logit + g) / eps) >= 0.5] with
    logistic noise g and a straight-through gradient. Returns (hard, noisy logit or None in eval).

    `sample_uniform` (a callable tensor -> tensor of U(0, 1) draws of its shape) replaces the random draws,
    for tests that replay stored noise."""

    def __init__(self, eps: float = 1.0):
        super().__init__()
        self.eps = eps
        self.sample_uniform: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training:
            return (logits >= 0).float(), None
        template = logits.detach()
        u = self.sample_uniform(template) if self.sample_uniform is not None else template.clone().uniform_()
        u = u.to(template)
        noisy = logits + (torch.log(u + 1e-8) - torch.log(1 - u + 1e-8))
        soft = torch.sigmoid(noisy / self.eps)
        hard = ((soft >= 0.5).float() - soft).detach() + soft
        return hard, noisy


class _AttentionBlock(nn.Module):
    """Attention + two-layer ReLU feed-forward + two LayerNorms, built in the official order."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.nhead = nhead

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class T2VEncoderLayer(_AttentionBlock):
    """Frames attend to the text; token and text pass through. The FFN reads LayerNorm1(x) but is added to x."""

    def forward(self, src: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor, video_length: int,
                official_mask_layout: bool) -> torch.Tensor:
        vl = video_length
        with_pos = src + pos
        text_padding = padding[:, vl + 1:]
        attn_mask = None
        if official_mask_layout:
            # [frame padded] AND [token padded] per sample, tiled as heads-outer: MultiheadAttention then reads
            # slot b*heads + h as the mask of sample (b*heads + h) mod B (the official layout bug).
            pair = padding[:, 1:vl + 1, None].float() @ text_padding[:, None, :].float()
            attn_mask = pair.bool().repeat(self.nhead, 1, 1)
        attended = self.self_attn(with_pos[1:vl + 1], with_pos[vl + 1:], value=src[vl + 1:], attn_mask=attn_mask,
                                  key_padding_mask=text_padding)[0]
        x = src[1:vl + 1] + self.dropout1(attended)
        x = self.norm2(x + self.dropout2(self._feed_forward(self.norm1(x))))
        return torch.cat([src[:1], x, src[vl + 1:]], dim=0)


class EncoderLayer(_AttentionBlock):
    """Standard self-attention layer (post- or pre-norm); also returns the first row's head-averaged attention."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool):
        super().__init__(d_model, nhead, dim_feedforward, dropout)
        self.pre_norm = pre_norm

    def forward(self, src: torch.Tensor, attn_mask: torch.Tensor | None, padding: torch.Tensor,
                pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if attn_mask is not None and attn_mask.is_floating_point():
            # the float form torch would make of the boolean padding (-inf where padded), stated explicitly
            padding = torch.zeros_like(padding, dtype=attn_mask.dtype).masked_fill(padding, float("-inf"))
        if self.pre_norm:
            x = self.norm1(src)
            out, weights = self.self_attn(x + pos, x + pos, value=x, attn_mask=attn_mask, key_padding_mask=padding)
            src = src + self.dropout1(out)
            return src + self.dropout2(self._feed_forward(self.norm2(src))), weights[:, 0, :]
        qk = src + pos
        out, weights = self.self_attn(qk, qk, value=src, attn_mask=attn_mask, key_padding_mask=padding)
        src = self.norm1(src + self.dropout1(out))
        return self.norm2(src + self.dropout2(self._feed_forward(src))), weights[:, 0, 1:]


    def infer(self, src: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """`forward` in eval mode without the attention weights, through `sdpa_attention`: `mask` (B, rows, L)
        additive, padding included (-inf), shared by the heads; `rows` the first query rows to compute (the
        retrieval token alone needs only row 0 of the last layer), None all."""
        r = slice(None) if rows is None else slice(0, rows)
        if self.pre_norm:
            x = self.norm1(src)
            src = src[r] + sdpa_attention(self.self_attn, (x + pos)[r], x + pos, x, mask)
            return src + self._feed_forward(self.norm2(src))
        qk = src + pos
        x = self.norm1(src[r] + sdpa_attention(self.self_attn, qk[r], qk, src, mask))
        return self.norm2(x + self._feed_forward(x))


def sdpa_attention(attn: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   mask: torch.Tensor | None) -> torch.Tensor:
    """nn.MultiheadAttention's eval output (sequence-first, separate q / k / v projections as it makes them when
    value is not key) through scaled_dot_product_attention with a (B, Lq, S) additive mask broadcast over the
    heads: the module's own path materialises a (B * heads, Lq, S) mask and the softmax weights, which on a
    900-frame window cost several times the arithmetic (the results agree to float rounding, ~1e-7)."""
    lq, b, e = query.shape
    h = attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)

    def heads(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w, bias).view(x.shape[0], b, h, e // h).permute(1, 2, 0, 3)

    out = F.scaled_dot_product_attention(heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v),
                                         attn_mask=None if mask is None else mask[:, None])
    out = out.permute(2, 0, 1, 3).reshape(lq * b, e)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias).view(lq, b, e)


class Encoder(nn.Module):
    """`layers` (+ a final `norm` with pre_norm); returns the memory and the stacked first-row attentions."""

    def __init__(self, layer: nn.Module, num_layers: int, norm: nn.LayerNorm | None):
        super().__init__()
        self.layers = nn.ModuleList(_clone(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, src, attn_mask, padding, pos):
        weights = []
        for layer in self.layers:
            src, w = layer(src, attn_mask, padding, pos)
            weights.append(w)
        return (self.norm(src) if self.norm is not None else src), torch.stack(weights)


class T2VEncoder(nn.Module):
    def __init__(self, layer: T2VEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(_clone(layer) for _ in range(num_layers))

    def forward(self, src, padding, pos, video_length: int, official_mask_layout: bool) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, padding, pos, video_length, official_mask_layout)
        return src


class DetrDecoderLayer(nn.Module):
    """The Moment-DETR decoder layer: self-attention, cross-attention to the memory, FFN (post- or pre-norm)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, tgt, memory, memory_key_padding_mask, pos, query_pos):
        if self.pre_norm:
            x = self.norm1(tgt)
            tgt = tgt + self.dropout1(self.self_attn(x + query_pos, x + query_pos, value=x)[0])
            x = self.norm2(tgt)
            tgt = tgt + self.dropout2(self.multihead_attn(x + query_pos, memory + pos, value=memory,
                                                          key_padding_mask=memory_key_padding_mask)[0])
            return tgt + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt))))))
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(qk, qk, value=tgt)[0]))
        tgt = self.norm2(tgt + self.dropout2(self.multihead_attn(tgt + query_pos, memory + pos, value=memory,
                                                                 key_padding_mask=memory_key_padding_mask)[0]))
        return self.norm3(tgt + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(tgt))))))


class DetrDecoder(nn.Module):
    """Returns the LayerNorm-ed state of every layer, (layers, Q, B, d)."""

    def __init__(self, layer: DetrDecoderLayer, num_layers: int, norm: nn.LayerNorm):
        super().__init__()
        self.layers = nn.ModuleList(_clone(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, tgt, memory, memory_key_padding_mask, pos, query_pos) -> torch.Tensor:
        states = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_key_padding_mask, pos, query_pos)
            states.append(self.norm(tgt))
        return torch.stack(states)


class MultiscalePool(nn.Module):
    """Three more levels by average pooling (kernel 3, stride 3). The official code interpolates the level-0
    *padding* mask and feeds it to the sine positions as if it were the valid mask; kept as it is."""

    levels = 4

    def __init__(self, hidden_dim: int, temperature: float):
        super().__init__()
        self.pool = nn.AvgPool1d(3, stride=3)
        self.hidden_dim, self.temperature = hidden_dim, temperature

    def forward(self, x, padding, pos):
        srcs, positions, masks = [x], [pos], [padding]
        x = x.permute(1, 2, 0)
        for _ in range(self.levels - 1):
            x = self.pool(x)
            m = F.interpolate(padding[None].float(), size=x.shape[2]).to(torch.bool)[0]
            p = sine_position_embedding(m, self.hidden_dim, self.temperature).to(x.dtype)
            srcs.append(x.permute(2, 0, 1))
            positions.append(p.permute(1, 0, 2))
            masks.append(m)
        return srcs, positions, masks


def _clone(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)


# --------------------------------------------------------------------------------------------- transformer
@dataclass(frozen=True)
class EncodedWindows:
    """A batch of windows after the text-to-video encoder, the gate and the window encoder but its last layer
    (sequence-first, as inside the transformer): what the retrieval score and the decoder share, so that the
    windows a query keeps are decoded without being encoded again (`RGNet.encode_windows`)."""

    src: torch.Tensor  # (n, B, d) the last encoder layer's input ([token,] frames[, text without qddetr])
    padding: torch.Tensor  # (B, n) True where padded
    pos: torch.Tensor  # (n, B, d)
    off: torch.Tensor | None  # (B, n) rows gated off (gumbel), else None
    gate_soft: torch.Tensor | None  # (1, B, frames)
    gate_hard: torch.Tensor | None  # (B, n)
    text: torch.Tensor  # (Lt, B, d) the projected text, its padding (B, Lt) and positions (decoder_gating)
    text_padding: torch.Tensor
    text_pos: torch.Tensor
    video_mask: torch.Tensor | None = None  # (B, frames) 1 = valid, the forward's input

    def take(self, index: torch.Tensor) -> EncodedWindows:
        """The windows `index` (a 1-D long tensor) of the batch."""
        def pick(x, dim):
            return None if x is None else x.index_select(dim, index)
        return EncodedWindows(pick(self.src, 1), pick(self.padding, 0), pick(self.pos, 1), pick(self.off, 0),
                              pick(self.gate_soft, 1), pick(self.gate_hard, 0), pick(self.text, 1),
                              pick(self.text_padding, 0), pick(self.text_pos, 1), pick(self.video_mask, 0))

    @staticmethod
    def cat(parts: list[EncodedWindows]) -> EncodedWindows:
        """Batches of the same padded length, one after the other."""
        def join(name, dim):
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values, dim)
        dims = dict(src=1, padding=0, pos=1, off=0, gate_soft=1, gate_hard=0, text=1, text_padding=0, text_pos=1,
                    video_mask=0)
        return EncodedWindows(**{name: join(name, dim) for name, dim in dims.items()})


class RGNetTransformer(nn.Module):
    """Text-to-video encoder, gate, window encoder and decoder (sequence-first inside, as the official code)."""

    def __init__(self, config: RGNetConfig):
        super().__init__()
        c = config
        d = c.hidden_dim
        self.config = c
        self.d_model, self.nhead = d, c.nheads
        # Construction order follows the official Transformer, so a seed gives the official initial weights.
        if c.qddetr:
            self.t2v_encoder = T2VEncoder(T2VEncoderLayer(d, c.nheads, c.dim_feedforward, c.dropout), c.enc_layers)
        if c.gumbel:
            self.prop_instance = nn.Linear(d, 1)
        if c.gumbel_3 and not c.gumbel_single_proj:
            self.prop_instance2 = nn.Linear(d, 1)
        if c.gumbel or c.gumbel_3:
            self.gumble_gate = GumbelGate(eps=c.gumbel_eps)
        layer = EncoderLayer(d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
        self.encoder = Encoder(layer, c.enc_layers, nn.LayerNorm(d) if c.pre_norm else None)
        decoder_norm = nn.LayerNorm(d)
        if c.dabdetr:
            dab_layer = AnchorDecoderLayer(d, c.nheads, c.dim_feedforward, c.dropout, keep_query_pos=True,
                                           activation="relu")
            self.decoder = AnchorDecoder(dab_layer, c.dec_layers, decoder_norm, d_model=d, query_dim=2,
                                         keep_query_pos=True, query_scale_type="cond_elewise",
                                         modulate_t_attn=True, bbox_embed_diff_each_layer=True, sine_feats=128)
        else:
            detr_layer = DetrDecoderLayer(d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
            self.decoder = DetrDecoder(detr_layer, c.dec_layers, decoder_norm)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if c.decoder_gating:  # built after the re-initialisation, as in the official code
            layer2 = DetrDecoderLayer(d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
            self.decoder2 = DetrDecoder(layer2, c.dec_layers_2, nn.LayerNorm(d))
        if c.multiscale:
            self.backbone = MultiscalePool(d, c.pos_temperature)
            self.level_embed = nn.Parameter(torch.zeros(MultiscalePool.levels, d))

    def _encoder_gate(self, src: torch.Tensor):
        """Gate over [token, frames]: the rows gated off (never the token), the gate as the losses read it (the
        noisy logits in training) and the hard gate."""
        hard, noisy = self.gumble_gate(self.prop_instance(src))
        soft = (hard if noisy is None else noisy)[1:].permute(2, 1, 0)
        hard = hard.permute(2, 1, 0)[0]
        off = hard == 0
        off[:, 0] = False
        return off, soft, hard

    def _encoder_mask(self, off: torch.Tensor, dtype: torch.dtype, rows: int | None = None) -> torch.Tensor:
        """(B, rows, n) additive encoder mask of the first `rows` query rows (None: all): gated-off rows get +1
        on every other key (gumbel_2), or the token row gets +1 on the gated-off frames."""
        n = off.shape[1]
        r = n if rows is None else rows
        if self.config.gumbel_2:
            eye = torch.eye(n, dtype=torch.bool, device=off.device)[:r]
            return (off[:, :r, None] & ~eye).to(dtype)
        mask = torch.zeros(off.shape[0], r, n, dtype=dtype, device=off.device)
        mask[:, 0, :] = off.to(dtype)
        return mask

    def _prepare(self, src, padding, pos, video_length: int) -> EncodedWindows:
        """Sequence-first inputs through the text-to-video encoder and the gate: the window encoder's input."""
        c = self.config
        vl = video_length
        src, pos = src.permute(1, 0, 2), pos.permute(1, 0, 2)
        off = gate_soft = gate_hard = None
        if c.qddetr:
            text = (src[vl + 1:], padding[:, vl + 1:], pos[vl + 1:])
            src = self.t2v_encoder(src, padding, pos, vl, c.official_mask_layout)[: vl + 1]
            padding, pos = padding[:, : vl + 1], pos[: vl + 1]
            if c.gumbel:
                off, gate_soft, gate_hard = self._encoder_gate(src)
        else:
            text = (src[vl:], padding[:, vl:], pos[vl:])
        return EncodedWindows(src, padding, pos, off, gate_soft, gate_hard, *text)

    def forward(self, src, padding, query_embed, pos, video_length: int, retrieval_only: bool = False):
        e = self._prepare(src, padding, pos, video_length)
        attn_mask = None if e.off is None else \
            self._encoder_mask(e.off, e.src.dtype).repeat_interleave(self.nhead, dim=0)
        memory, attn_weights = self.encoder(e.src, attn_mask, e.padding, e.pos)
        if retrieval_only and self.config.qddetr:
            return memory[0]
        return self._decode(e, memory, attn_weights, query_embed)

    # -- inference: the window encoder through the fast attention, its work shared by both stages -----------
    def _inference_mask(self, e: EncodedWindows, rows: int | None = None) -> torch.Tensor:
        """The encoder mask with the padding folded in (-inf), as MultiheadAttention merges them."""
        dtype = e.src.dtype
        pad = torch.zeros(e.padding.shape, dtype=dtype, device=e.padding.device).masked_fill(e.padding,
                                                                                            float("-inf"))
        if e.off is None:
            return pad[:, None, :]
        return self._encoder_mask(e.off, dtype, rows) + pad[:, None, :]

    def encode_windows(self, src, padding, pos, video_length: int) -> EncodedWindows:
        """Eval only: `_prepare` and every window-encoder layer but the last (`EncoderLayer.infer`)."""
        e = self._prepare(src, padding, pos, video_length)
        x = e.src
        for layer in self.encoder.layers[:-1]:
            x = layer.infer(x, self._inference_mask(e), e.pos)
        return replace(e, src=x)

    def retrieval_token(self, e: EncodedWindows) -> torch.Tensor:
        """(B, d) the retrieval token's memory from `encode_windows`: the last layer's first row alone."""
        token = self.encoder.layers[-1].infer(e.src, self._inference_mask(e, rows=1), e.pos, rows=1)
        return (self.encoder.norm(token) if self.encoder.norm is not None else token)[0]

    def decode_windows(self, e: EncodedWindows, query_embed: torch.Tensor):
        """`forward`'s result from `encode_windows` (eval): the last layer over every row, then the decoder;
        without a gate the attention weights are not computed (None)."""
        memory = self.encoder.layers[-1].infer(e.src, self._inference_mask(e), e.pos)
        if self.encoder.norm is not None:
            memory = self.encoder.norm(memory)
        return self._decode(e, memory, None, query_embed)

    def _decode(self, e: EncodedWindows, memory: torch.Tensor, attn_weights, query_embed: torch.Tensor):
        c = self.config
        bs = memory.shape[1]
        off, gate_soft, gate_hard = e.off, e.gate_soft, e.gate_hard
        src_text, mask_text, pos_text = e.text, e.text_padding, e.text_pos
        if c.qddetr:
            memory_global, memory_video = memory[0], memory[1:]
            mask_video, pos_video = e.padding[:, 1:], e.pos[1:]
        else:
            memory_global, memory_video, mask_video, pos_video = None, memory, e.padding, e.pos

        if c.gumbel_3:
            if c.gumbel_single_proj:
                gate_hard, off = gate_hard[:, 1:], off[:, 1:]
            else:
                hard, noisy = self.gumble_gate(self.prop_instance2(memory_video))
                gate_soft = (hard if noisy is None else noisy)[1:].permute(2, 1, 0)
                gate_hard = hard.permute(2, 1, 0)[0]
                off = gate_hard == 0
            if c.gumbel_2:
                memory_video = memory_video + gate_hard.transpose(0, 1)[:, :, None] * memory_global[None]
        frame_memory = memory_video
        if c.multiscale:
            srcs, positions, masks = self.backbone(memory_video, mask_video, pos_video)
            memory_video = torch.cat(srcs, 0)
            mask_video = torch.cat(masks, 1)
            pos_video = torch.cat([p + self.level_embed[i].view(1, 1, -1) for i, p in enumerate(positions)], 0)

        references = None
        if c.decoder_gating:
            query_pos = query_embed.unsqueeze(1).repeat(1, bs, 1)
            tgt = self.decoder(torch.zeros_like(query_pos), src_text, mask_text, pos_text, query_pos)
            hs = self.decoder2(tgt[-1], memory_video, mask_video, pos_video, query_pos).transpose(1, 2)
        elif c.dabdetr:
            refpoints = query_embed.unsqueeze(1).repeat(1, bs, 1)
            tgt = torch.zeros(refpoints.shape[0], bs, self.d_model, dtype=memory.dtype, device=memory.device)
            hs, references = self.decoder(tgt, memory_video, mask_video, pos_video, refpoints)
        else:
            query_pos = query_embed.unsqueeze(1).repeat(1, bs, 1)
            key_padding = torch.logical_or(mask_video, off) if c.gumbel_3 else mask_video
            hs = self.decoder(torch.zeros_like(query_pos), memory_video, key_padding, pos_video,
                              query_pos).transpose(1, 2)
        attn_out = gate_soft if c.gumbel else attn_weights
        return hs, frame_memory.transpose(0, 1), memory_global, attn_out, gate_hard, references


# ------------------------------------------------------------------------------------------------- model
class RGNet(nn.Module, GroundingModel):
    """Query tokens + one window of frames per row in; spans, their 2-class logits, the window-retrieval logit,
    per-frame saliency and gates out (the official forward); the product's view through `GroundingModel`."""

    architecture = "rgnet"

    def __init__(self, config: RGNetConfig):
        super().__init__()
        c = config.validate()
        self.config = c
        d = c.hidden_dim
        self.hidden_dim = d
        # The official builder draws the text positions before the transformer; registration order (and so the
        # state_dict order) puts the transformer first.
        txt_position_embed = TrainablePositionEmbedding(c.max_q_l, d, c.input_dropout)
        self.transformer = RGNetTransformer(c)
        self.txt_position_embed = txt_position_embed
        self.span_embed = MLP(d, d, 2, 3)
        self.class_embed = nn.Linear(2 * d if c.winret_neg_loss else d, 2)  # 0 foreground, 1 background
        self.query_embed = nn.Embedding(c.num_queries, 2 if c.dabdetr else d)
        self.input_txt_proj = projector(c.t_feat_dim, d, c.n_input_proj, c.input_dropout)
        self.input_vid_proj = projector(c.v_motion_feat_dim, d, c.n_input_proj, c.input_dropout)
        self.saliency_proj = nn.Linear(d, 1)
        if c.adapter_module == "linear":
            self.adapter_layer = MLP(c.v_appear_feat_dim, d, c.v_appear_feat_dim, 2)
        if c.qddetr:
            self.saliency_proj1 = nn.Linear(d, d)
            self.saliency_proj2 = nn.Linear(d, d)
            self.saliency_proj3 = nn.Linear(d, 1)
            self.global_rep_token = nn.Parameter(torch.randn(d))
            self.global_rep_pos = nn.Parameter(torch.randn(d))

    # -- the official forward ---------------------------------------------------------------------------
    @property
    def official_mask_layout(self) -> bool:
        """True: the text-to-video encoder reproduces the official cross-sample text-mask layout (a row's
        result then depends on the other queries in its batch, as in the official evaluation with eval_bsz > 1
        and in its training pairs). False (default): each row reads only its own mask."""
        return self.config.official_mask_layout

    @official_mask_layout.setter
    def official_mask_layout(self, value: bool) -> None:
        self.config = replace(self.config, official_mask_layout=bool(value))
        self.transformer.config = self.config

    def _inputs(self, src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask):
        c = self.config
        vid = self.input_vid_proj(src_vid_motion)
        txt = self.input_txt_proj(src_txt)
        src = torch.cat([vid, txt], dim=1)
        valid = torch.cat([src_vid_motion_mask, src_txt_mask], dim=1).bool()
        pos_vid = sine_position_embedding(src_vid_motion_mask, self.hidden_dim, c.pos_temperature)
        pos_txt = self.txt_position_embed(txt) if c.use_txt_pos else torch.zeros_like(txt)
        pos = torch.cat([pos_vid, pos_txt], dim=1)
        if c.qddetr:
            bs = src.shape[0]
            valid = torch.cat([torch.ones(bs, 1, dtype=torch.bool, device=valid.device), valid], dim=1)
            src = torch.cat([self.global_rep_token.view(1, 1, -1).expand(bs, 1, -1), src], dim=1)
            pos = torch.cat([self.global_rep_pos.view(1, 1, -1).expand(bs, 1, -1), pos], dim=1)
        return src, ~valid, pos, vid.shape[1]

    def forward(self, src_txt: torch.Tensor, src_txt_mask: torch.Tensor, src_vid_motion: torch.Tensor,
                src_vid_motion_mask: torch.Tensor) -> dict[str, Any]:
        """src_txt (B, Lt, t_feat_dim), src_vid_motion (B, Lv, v_motion_feat_dim), masks 1 = valid."""
        src, padding, pos, vl = self._inputs(src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask)
        return self._outputs(self.transformer(src, padding, self.query_embed.weight, pos, vl), src_vid_motion_mask)

    def _outputs(self, transformed: tuple, src_vid_motion_mask: torch.Tensor) -> dict[str, Any]:
        """The heads on the transformer's result: the forward's output dict."""
        c = self.config
        hs, memory, memory_global, attn_weights, gate_hard, reference = transformed
        vl = src_vid_motion_mask.shape[1]
        if c.winret_neg_loss:
            token = self.global_rep_token.view(1, 1, 1, -1).expand(*hs.shape[:3], -1)
            outputs_class = self.class_embed(torch.cat([token, hs], dim=-1))
        else:
            outputs_class = self.class_embed(hs)
        coord = self.span_embed(hs)
        if c.dabdetr:
            coord = coord + inverse_sigmoid(reference)
        coord = coord.sigmoid()
        out: dict[str, Any] = {
            "pred_logits": outputs_class[-1],
            "pred_spans": coord[-1],
            "prob_soft": self.saliency_proj3(memory_global) if c.qddetr else None,
            "attn_weights": attn_weights,
            "pred_prop_hard": gate_hard,
        }
        vid_mem = memory[:, :vl]
        if c.qddetr:
            products = self.saliency_proj1(vid_mem) * self.saliency_proj2(memory_global).unsqueeze(1)
            out["saliency_scores"] = products.sum(-1) / math.sqrt(self.hidden_dim)
        else:
            out["saliency_scores"] = self.saliency_proj(vid_mem).squeeze(-1)
        out["video_mask"] = src_vid_motion_mask
        if c.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_spans": b} for a, b in zip(outputs_class[:-1], coord[:-1])]
        return out

    def retrieval_logits(self, src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask) -> torch.Tensor:
        """`prob_soft` alone (B, 1), without the decoder: the learned first stage (in eval through
        `encode_windows`, which skips all of the last encoder layer but the token's row)."""
        if not self.config.qddetr:
            raise CheckpointError("this RGNet checkpoint has no retrieval token (trained without --qddetr)")
        if not self.training:
            return self.retrieval_from(self.encode_windows(src_txt, src_txt_mask, src_vid_motion,
                                                           src_vid_motion_mask))
        src, padding, pos, vl = self._inputs(src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask)
        memory_global = self.transformer(src, padding, self.query_embed.weight, pos, vl, retrieval_only=True)
        return self.saliency_proj3(memory_global)

    # -- inference in two stages over shared work ------------------------------------------------------------
    @torch.no_grad()
    def encode_windows(self, src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask) -> EncodedWindows:
        """Eval-mode inputs of `forward`, encoded up to the last window-encoder layer: `retrieval_from` scores
        them, `outputs_from` finishes the forward, each doing only its own part of that layer."""
        if self.training:
            raise RuntimeError("encode_windows is inference only: call model.eval() first")
        src, padding, pos, vl = self._inputs(src_txt, src_txt_mask, src_vid_motion, src_vid_motion_mask)
        return replace(self.transformer.encode_windows(src, padding, pos, vl), video_mask=src_vid_motion_mask)

    @torch.no_grad()
    def retrieval_from(self, encoded: EncodedWindows) -> torch.Tensor:
        """(B, 1) `prob_soft` of encoded windows."""
        return self.saliency_proj3(self.transformer.retrieval_token(encoded))

    @torch.no_grad()
    def outputs_from(self, encoded: EncodedWindows) -> dict[str, Any]:
        """`forward`'s outputs of encoded windows (`attn_weights` None for checkpoints without a gate)."""
        return self._outputs(self.transformer.decode_windows(encoded, self.query_embed.weight), encoded.video_mask)

    def adapt_appearance(self, frames: torch.Tensor) -> torch.Tensor:
        """The CLIP-matching features: the linear adapter's residual output (Ego4D) or the frames themselves."""
        if self.config.adapter_module == "linear":
            return self.adapter_layer(frames) + frames
        return frames

    def forward_clip_matching(self, src_cls_txt: torch.Tensor, src_vid_appear: torch.Tensor,
                              src_vid_appear_mask: torch.Tensor, proposal=None, is_groundtruth: bool = False):
        """The official CLIP-matching score (sum of the top-3 frame-sentence cosines inside a span).

        is_groundtruth: `proposal` is the official list of {"proposal": (1, 2) int frames [start, end)} per
        sample; returns (B, B) scores of sample b's ground-truth frames against every sentence (the adapter
        loss). Otherwise `proposal` is (B, Q, 2) predicted (center, width) spans; returns (B, Q), slicing the
        padded features exactly as the official inference does (see rgnet_inference.clip_matching_scores).
        """
        from .rgnet_inference import clip_matching_scores, ground_truth_matching

        if is_groundtruth:
            spans = torch.vstack([t["proposal"][0] for t in proposal])
            return ground_truth_matching(src_vid_appear, spans, src_cls_txt, self.adapt_appearance)
        lengths = src_vid_appear_mask.sum(-1)
        return clip_matching_scores(src_vid_appear, lengths, proposal, src_cls_txt, self.adapt_appearance,
                                    official_padding=True)

    # -- the contract ----------------------------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec

    @property
    def default_coarse_top_k(self) -> int:
        """`topk_window`: the windows its official inference grounds (30 on MAD, 20 on Ego4D)."""
        return int(self.config.topk_window)

    def query_text(self, text: str) -> str:
        """MAD's official text extractor (CONE's, whose features RGNet trains on) makes each query canonical:
        "." then " " then "?" stripped from both ends, in that order, and one "." appended."""
        if self.config.dset_name == "ego4d":
            return text
        return text.strip(".").strip(" ").strip("?") + "."

    def query_input(self, query) -> QueryInput:
        """Dataset tokens (query.text_rows None) as they are; encoder-made text without CLIP's start and end rows
        (RGNet's extractors keep rows 1 .. n-2 of the ln_final output); then the first max_q_l rows, each divided
        by (norm + 1e-5). The sentence embedding is normalised the same way."""
        c = self.config
        tokens = np.asarray(query.tokens, dtype=np.float32)
        given = len(tokens)
        if query.text_rows is not None:
            n = int(query.text_rows)
            tokens = np.concatenate([tokens[1:max(n - 1, 1)], tokens[n:]], axis=0)
        if tokens.shape[1:] != (c.t_feat_dim,):
            raise QueryError(f"RGNet expects query tokens of width {c.t_feat_dim}, got {tokens.shape[1:]}; "
                             f"encode the query with the text model the checkpoint was trained with")
        if len(tokens) == 0:
            raise QueryError("the query has no token rows between CLIP's start and end tokens; type some words")
        tokens = tokens[: c.max_q_l]
        if c.normalize_text:
            tokens = _l2_normalize(tokens)
        embedding = None
        if getattr(query, "embedding", None) is not None:
            embedding = np.asarray(query.embedding, dtype=np.float32).reshape(-1)
            if embedding.shape[0] != c.v_appear_feat_dim:
                raise QueryError(f"RGNet matches sentence embeddings of width {c.v_appear_feat_dim} with the "
                                 f"frames, got {embedding.shape[0]}")
            embedding = _l2_normalize(embedding[None])[0]
        return QueryInput(tokens=tokens.astype(np.float32), rows_read=len(tokens), rows_given=given,
                          embedding=embedding)

    def _batch(self, video: np.ndarray, query: QueryInput, lengths):
        device = next(self.parameters()).device
        video = torch.as_tensor(np.asarray(video, dtype=np.float32), device=device)
        b, length = video.shape[:2]
        if video.shape[2] != self.config.v_motion_feat_dim:
            raise CheckpointError(f"RGNet expects video features of width {self.config.v_motion_feat_dim}, "
                                  f"got {video.shape[2]}")
        lengths = np.full(b, length) if lengths is None else np.asarray(lengths)
        mask = (torch.arange(length, device=device)[None] < torch.as_tensor(lengths, device=device)[:, None]).float()
        txt = torch.as_tensor(query.tokens, device=device)[None].expand(b, -1, -1)
        return dict(src_txt=txt, src_txt_mask=torch.ones(txt.shape[:2], device=device),
                    src_vid_motion=video * mask[..., None], src_vid_motion_mask=mask)

    @torch.no_grad()
    def window_scores(self, video: np.ndarray, query: QueryInput, clip_len: float, lengths=None) -> np.ndarray | None:  # noqa: ARG002 - the contract's signature
        """sigmoid(prob_soft) of each window (B,), the score RGNet ranks windows by; `lengths` (B,) valid frames
        per zero-padded row (None: all L). A checkpoint without a retrieval token ranks them as the official
        evaluation then does, by CONE's pre-filter (the best frame-sentence cosine in the window); with no
        sentence embedding either, None (ground() then has no first stage of this model)."""
        batch = self._batch(video, query, lengths)
        if not self.config.qddetr:
            prefilter = self._prefilter(batch, query)
            return None if prefilter is None else prefilter.cpu().numpy()
        logits = self.retrieval_logits(**batch)
        return torch.sigmoid(logits[:, 0]).cpu().numpy()

    def _prefilter(self, batch: dict, query: QueryInput) -> torch.Tensor | None:
        """(B,) CONE's pre-filter score of each row's valid frames, or None without a sentence embedding."""
        if query.embedding is None:
            return None
        from .rgnet_inference import prefilter_window_scores

        frames, mask = batch["src_vid_motion"], batch["src_vid_motion_mask"]
        adapt = self.adapt_appearance if self.config.adapter_module == "linear" else None
        sentence = torch.as_tensor(query.embedding, device=frames.device)
        lengths = mask.sum(-1).long().tolist()
        return torch.cat([prefilter_window_scores(frames[b], sentence, np.array([[0, n]]), adapt)
                          for b, n in enumerate(lengths)])

    @torch.no_grad()
    def predict_windows(self, video: np.ndarray, query: QueryInput, clip_len: float, lengths=None) -> WindowOutput:
        """Candidates of B windows; with the query's embedding, `extras["matching"]` holds the CLIP-matching score
        (frames clipped to each window's valid length: the official code would read its zero padding)."""
        batch = self._batch(video, query, lengths)
        out = self(**batch) if self.training else self.outputs_from(self.encode_windows(**batch))
        prefilter = None if self.config.qddetr else self._prefilter(batch, query)
        return self.window_output(batch, out, query, clip_len, prefilter)

    def window_output(self, batch: dict, out: dict, query: QueryInput, clip_len: float,
                      prefilter: torch.Tensor | None = None) -> WindowOutput:
        """`predict_windows`' result from the forward's inputs `batch` and outputs `out`; `prefilter` (B,) the
        windows' pre-filter scores for a checkpoint without a retrieval token (the official proposal score then
        multiplies by their sigmoid)."""
        decoded = self.decode_outputs(out, batch["src_vid_motion_mask"], clip_len)
        if prefilter is not None:  # the official proposal score without a retrieval token
            decoded.extras["proposal"] = decoded.extras["proposal"] * prefilter.sigmoid().cpu().numpy()[:, None]
            decoded.extras["window_score"] = prefilter.cpu().numpy()
        if query.embedding is not None:
            text = torch.as_tensor(query.embedding, device=batch["src_vid_motion"].device)[None]
            text = text.expand(len(batch["src_vid_motion"]), -1)
            matching = clip_matching_for(self, batch["src_vid_motion"], batch["src_vid_motion_mask"], out, text)
            decoded.extras["matching"] = matching.cpu().numpy()
        return decoded

    def decode_outputs(self, outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:  # noqa: ARG002 - the contract's signature
        """Spans (center, width of the valid length) -> seconds from the window's first frame; score = foreground
        probability x window score (the official proposal score; without a window score, the probability)."""
        from .rgnet_inference import proposal_scores

        spans = outputs["pred_spans"].float()
        lengths = torch.as_tensor(video_mask).float().sum(-1)
        xx = torch.stack([spans[..., 0] - 0.5 * spans[..., 1], spans[..., 0] + 0.5 * spans[..., 1]], dim=-1)
        windows = xx * lengths[:, None, None] * clip_len
        proposal, window_score = proposal_scores(outputs, self.config.winret_neg_loss)
        extras = {"spans_cxw": spans.cpu().numpy(), "lengths": lengths.cpu().numpy().astype(np.int64),
                  "proposal": proposal.cpu().numpy()}
        if window_score is not None:
            extras["window_score"] = window_score.cpu().numpy()
        return WindowOutput(windows=windows.cpu().numpy(), scores=proposal.cpu().numpy(),
                            saliency=outputs["saliency_scores"].float().cpu().numpy(), extras=extras)

    def staged_windows(self, video: np.ndarray, query: QueryInput, grid: np.ndarray, top_k: int | None,
                       clip_len: float, chunk: int = 8):
        """Every window encoded once for both stages, the decoder on the top `top_k` only (see
        `rgnet_inference.staged_windows`); ranked by the official torch.sort. None without a first stage."""
        from .rgnet_inference import staged_windows

        staged = staged_windows(self, video, query, grid, top_k, clip_len, chunk)
        return None if staged is None else (staged.scores, staged.kept, staged.outputs)

    def window_grid(self, n_clips: int) -> np.ndarray:
        """RGNet's own windows over a whole video: stride half a window, starting with a half window."""
        from .rgnet_inference import window_grid

        return window_grid(n_clips, self.config.max_v_l)

    def rank_moments(self, outputs: WindowOutput, window_starts: np.ndarray, clip_len: float):
        """The official second stage over the selected windows (rows of `outputs` in retrieval order):
        rows rounded to 4 decimals, proposal and matching scores min-max normalised and summed, NMS at
        `nms_thd` on intersection over hull, `max_after_nms` kept."""
        from .rgnet_inference import rank_window_candidates

        return rank_window_candidates(outputs, window_starts, clip_len, self.config)


def clip_matching_for(model: RGNet, frames: torch.Tensor, mask: torch.Tensor, outputs: dict,
                      text: torch.Tensor) -> torch.Tensor:
    """The product's matching score of every predicted span: frames clipped to the window's valid length;
    Ego4D checkpoints also multiply it by the window score, as the official evaluation does."""
    from .rgnet_inference import clip_matching_scores

    scores = clip_matching_scores(frames, mask.sum(-1), outputs["pred_spans"], text, model.adapt_appearance,
                                  official_padding=False)
    if model.config.dset_name == "ego4d" and outputs.get("prob_soft") is not None:
        scores = scores * outputs["prob_soft"].sigmoid()
    return scores


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-5)


# ------------------------------------------------------------------------------------------------ loading
def _layer_count(state: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _read_options(checkpoint: dict, path: Path) -> tuple[dict, str]:
    opt = checkpoint.get("opt")
    if isinstance(opt, argparse.Namespace):
        return dict(vars(opt)), "checkpoint"
    if isinstance(opt, dict):
        return dict(opt), "checkpoint"
    opt_json = path.parent / "opt.json"
    if path.name and opt_json.is_file():
        try:
            return json.loads(opt_json.read_text()), "opt.json"
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {opt_json}: {exc}") from exc
    return {}, "shapes"


def is_rgnet_checkpoint(state: dict, options: dict | None = None) -> bool:
    """Whether a state_dict (and its options) is RGNet's, for the registry's architecture detection.

    The retrieval token's text-to-video encoder sits under `transformer.` only in RGNet (QD-DETR and MESM keep
    it at the top level); a checkpoint without it (trained without --qddetr) has Moment-DETR's layout and is
    recognised by RGNet's own options (`dabdetr`, `gumbel`, ...)."""
    if "transformer.t2v_encoder.layers.0.self_attn.in_proj_weight" in state:
        return True
    detr_like = {"span_embed.layers.0.weight", "query_embed.weight", "class_embed.weight",
                 "input_vid_proj.0.LayerNorm.weight"} <= set(state)
    return detr_like and options is not None and {"dabdetr", "gumbel", "winret"} <= set(options)


def config_from_checkpoint(checkpoint: dict, path: str | Path = "", **overrides) -> RGNetConfig:
    """Settings from the checkpoint's `opt` (else opt.json beside it); the tensor shapes decide every width,
    count and optional part, with a warning where the options disagree."""
    path = Path(path)
    options, source = _read_options(checkpoint, path)
    return _config(state_dict_of(checkpoint), options, source, path.name, **overrides)


def config_from_contents(contents: CheckpointContents) -> RGNetConfig:
    """The registry's view of `config_from_checkpoint`: a checkpoint read by `models.read_checkpoint`."""
    source = "shapes" if contents.options_source == "none" else contents.options_source
    return _config(contents.state_dict, contents.options, source, contents.path.name)


def _config(state: dict, options: dict, source: str, name: str, **overrides) -> RGNetConfig:
    if not is_rgnet_checkpoint(state, options):
        raise CheckpointError(f"{name or 'the checkpoint'} is not an RGNet checkpoint (no "
                              f"transformer.t2v_encoder weights and no RGNet options)")
    values: dict[str, Any] = {}
    for f in fields(RGNetConfig):
        if f.name in options and options[f.name] is not None:
            values[f.name] = options[f.name]
    if "no_norm_tfeat" in options:
        values["normalize_text"] = not bool(options["no_norm_tfeat"])
    reduction = int(options.get("input_fps_reduction", 1) or 1)
    if "clip_length" in options and options["clip_length"] is not None:
        # opt.json is written before the official training multiplies clip_length by input_fps_reduction.
        values["clip_length"] = float(options["clip_length"]) * (reduction if source == "opt.json" else 1)
    dset = str(options.get("dset_name") or "mad")
    values["dset_name"] = dset
    # Evaluation-time settings come from the caller, as in the official loader (which keeps the command line's
    # topk_window, nms_thd, max_before_nms and max_after_nms): the inference scripts' values by default.
    for name in ("topk_window", "nms_thd", "max_before_nms", "max_after_nms"):
        values.pop(name, None)
    values["topk_window"] = 20 if dset == "ego4d" else 30

    hidden = int(state["input_vid_proj.0.net.1.weight"].shape[0])
    span_out = int(state[f"span_embed.layers.{_layer_count(state, 'span_embed.layers') - 1}.weight"].shape[0])
    shaped = dict(
        t_feat_dim=int(state["input_txt_proj.0.LayerNorm.weight"].shape[0]),
        v_motion_feat_dim=int(state["input_vid_proj.0.LayerNorm.weight"].shape[0]),
        hidden_dim=hidden,
        n_input_proj=_layer_count(state, "input_vid_proj"),
        num_queries=int(state["query_embed.weight"].shape[0]),
        max_q_l=int(state["txt_position_embed.position_embeddings.weight"].shape[0]),
        enc_layers=_layer_count(state, "transformer.encoder.layers"),
        dim_feedforward=int(state["transformer.encoder.layers.0.linear1.weight"].shape[0]),
        qddetr="global_rep_token" in state,
        gumbel="transformer.prop_instance.weight" in state,
        dabdetr="transformer.decoder.ref_point_head.layers.0.weight" in state,
        decoder_gating="transformer.decoder2.layers.0.linear1.weight" in state,
        multiscale="transformer.level_embed" in state,
        pre_norm="transformer.encoder.norm.weight" in state,
        adapter_module="linear" if "adapter_layer.layers.0.weight" in state else "none",
        winret_neg_loss=int(state["class_embed.weight"].shape[1]) == 2 * hidden,
        span_loss_type="l1" if span_out == 2 else "ce",
    )
    shaped["dec_layers"] = _layer_count(state, "transformer.decoder.layers")
    if shaped["decoder_gating"]:
        shaped["dec_layers_2"] = _layer_count(state, "transformer.decoder2.layers")
    if shaped["adapter_module"] == "linear":
        shaped["v_appear_feat_dim"] = int(state["adapter_layer.layers.0.weight"].shape[1])
    elif "v_appear_feat_dim" not in values:
        shaped["v_appear_feat_dim"] = shaped["v_motion_feat_dim"]
    if "transformer.prop_instance2.weight" in state:
        shaped["gumbel_3"], shaped["gumbel_single_proj"] = True, False
    elif values.get("gumbel_3") and not values.get("gumbel_single_proj"):
        shaped["gumbel_single_proj"] = True  # no second projection saved: gumbel_3 reused the first gate
    for name, value in shaped.items():
        if name in values and values[name] != value and source != "shapes":
            logger.warning("%s says %s=%r but the weights say %r; using the weights", source, name, values[name],
                           value)
        values[name] = value
    values.update(overrides)
    return RGNetConfig.from_dict(values).validate()


def load_rgnet(path: str | Path, device: str | torch.device | None = None, **overrides) -> RGNet:
    """An official RGNet checkpoint (plain or DDP-saved) -> an eval-mode model on `device`.

    Read with torch.load(weights_only=True) allowing only argparse.Namespace, collections.Counter and
    torch.device; `overrides` set RGNetConfig fields (e.g. official_mask_layout=True, topk_window=20).
    """
    path = Path(path)
    checkpoint = read_weights(path, SAFE_GLOBALS, what="RGNet checkpoint")
    config = config_from_checkpoint(checkpoint, path, **overrides)
    model = RGNet(config)
    try:
        model.load_state_dict(state_dict_of(checkpoint), strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise CheckpointError(f"{path} does not match the RGNet architecture its options and shapes describe "
                              f"({_describe(config)}): {detail}") from exc
    return model.to(pick_device(device)).eval()


def _describe(c: RGNetConfig) -> str:
    flags = [n for n in ("qddetr", "dabdetr", "gumbel", "gumbel_2", "gumbel_3", "gumbel_single_proj",
                         "decoder_gating", "multiscale", "winret_neg_loss") if getattr(c, n)]
    return (f"hidden {c.hidden_dim}, {c.enc_layers} encoder / {c.dec_layers} decoder layers, {c.num_queries} "
            f"queries, adapter {c.adapter_module}, {' '.join(flags) or 'no flags'}")


ARCHITECTURE = register(Architecture(
    name="rgnet",
    summary="RGNet (ECCV'24): window retrieval and grounding in one network for hour-long videos",
    module=RGNet,
    config_from_checkpoint=config_from_contents,
    model_ids=("rgnet",),
    training="univtg_core.training.recipes.rgnet:RECIPE",
    safe_globals=tuple(SAFE_GLOBALS),
    recognise=lambda contents: is_rgnet_checkpoint(contents.state_dict, contents.options),
    features="video: CLIP ViT-B/32 image embeddings per frame at 5 fps, raw (MAD), or EgoVLP 256-d features "
             "(Ego4D-NLQ; precomputed only); text: CLIP per-token ln_final rows without the start and end "
             "tokens (MAD) or EgoVLP's; the sentence feature re-scores spans (CLIP matching)",
    checkpoints="RGNet's released MAD checkpoint runs on a user's video (CLIP at 5 fps); the Ego4D-NLQ ones need "
                "EgoVLP features and run from precomputed features in the CLI and evaluation",
))
