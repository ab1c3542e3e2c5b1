"""The UniVTG network (nn.Modules only), laid out so that official checkpoints load with strict=True.

Parameter names, initialisation and arithmetic follow the official model: post-norm encoder layers with
exact GELU, a sine position embedding of the video mask's cumulative sum, attention-pooled text for the
saliency head, and three-layer Conv1d heads that run over the whole padded sequence.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings; names follow UniVTG's options so an `opt` maps onto them directly."""

    v_feat_dim: int = 514  # video input width, tef columns included
    t_feat_dim: int = 512
    hidden_dim: int = 1024
    enc_layers: int = 4
    nheads: int = 8
    dim_feedforward: int = 1024
    n_input_proj: int = 2
    input_dropout: float = 0.5
    dropout: float = 0.0
    droppath: float = 0.1
    use_txt_pos: bool = False
    max_q_l: int = 32
    max_v_l: int = 75
    pre_norm: bool = False
    span_loss_type: str = "l1"
    # Preprocessing that travels with the model.
    clip_length: float = 2.0
    use_tef: bool = True
    normalize_video: bool = True
    normalize_text: bool = True

    @property
    def video_feature_dim(self) -> int:
        """Width of the raw clip features the model expects (without the two tef columns)."""
        return self.v_feat_dim - (2 if self.use_tef else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _mask_logits(inputs: torch.Tensor, mask: torch.Tensor, mask_value: float = -1e30) -> torch.Tensor:
    return inputs + (1.0 - mask.float()) * mask_value


class LinearLayer(nn.Module):
    """LayerNorm -> Dropout -> Linear -> optional ReLU (the Linear sits at net.1, as in the official keys)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, relu: bool):
        super().__init__()
        self.relu = relu
        self.LayerNorm = nn.LayerNorm(in_dim)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(self.LayerNorm(x))
        return F.relu(x) if self.relu else x


def input_projection(in_dim: int, hidden_dim: int, depth: int, dropout: float) -> nn.Sequential:
    """The official projector: up to three LinearLayers, ReLU on all of them but the last used."""
    if not 1 <= depth <= 3:
        raise ValueError(f"n_input_proj must be 1, 2 or 3; got {depth}")
    relu = [True, True, True]
    relu[depth - 1] = False
    dims = [in_dim, hidden_dim, hidden_dim]
    # All three layers are built (and draw their random init) before slicing, as the official model does,
    # so that the same seed gives the same initial weights as the official code.
    layers = [LinearLayer(dims[i], hidden_dim, dropout, relu[i]) for i in range(3)]
    return nn.Sequential(*layers[:depth])


class ConvHead(nn.Module):
    """Stacked k=3 Conv1d layers over time with ReLU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3, kernel_size: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            nn.Conv1d(i, o, kernel_size=kernel_size, padding=kernel_size // 2) for i, o in zip(dims, outs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x.permute(0, 2, 1)


class WeightedPool(nn.Module):
    """Attention pooling of text tokens into one sentence vector (padded tokens get -1e30)."""

    def __init__(self, dim: int):
        super().__init__()
        weight = torch.empty(dim, 1)
        nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        alpha = torch.tensordot(x, self.weight, dims=1)
        alpha = torch.softmax(_mask_logits(alpha, mask.unsqueeze(2)), dim=1)
        return torch.matmul(x.transpose(1, 2), alpha).squeeze(2)


class TextPositionEmbedding(nn.Module):
    """Learned text positions; the official model adds LayerNorm(tokens + position) as the position term."""

    def __init__(self, max_len: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.position_embeddings = nn.Embedding(max_len, hidden_dim)
        self.LayerNorm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.dropout(self.LayerNorm(tokens + self.position_embeddings(positions)[None]))


def sine_position_embedding(mask: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine embedding of the mask's cumulative sum, normalised by the valid length (official layout)."""
    position = mask.cumsum(1, dtype=torch.float32)
    position = position / (position[:, -1:] + 1e-6) * (2 * math.pi)
    index = torch.arange(dim, dtype=torch.float32, device=mask.device)
    freq = temperature ** (2 * torch.div(index, 2).int() / dim)
    angles = position[:, :, None] / freq
    return torch.stack((angles[:, :, 0::2].sin(), angles[:, :, 1::2].cos()), dim=3).flatten(2)


def _drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample; x is sequence-first, so samples are along dim 1."""
    if prob == 0.0 or not training:
        return x
    keep = 1 - prob
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mask = torch.floor(keep + torch.rand(shape, dtype=x.dtype, device=x.device))
    return x / keep * mask


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward; positions go into queries and keys only."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, droppath: float,
                 pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.droppath = droppath
        self.pre_norm = pre_norm

    def _attend(self, x: torch.Tensor, pos: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        qk = x + pos
        return self.self_attn(qk, qk, value=x, key_padding_mask=padding, need_weights=False)[0]

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.gelu(self.linear1(x)))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + _drop_path(self._attend(self.norm1(x), pos, padding), self.droppath, self.training)
            return x + _drop_path(self._feed_forward(self.norm2(x)), self.droppath, self.training)
        x = self.norm1(x + _drop_path(self._attend(x, pos, padding), self.droppath, self.training))
        return self.norm2(x + _drop_path(self._feed_forward(x), self.droppath, self.training))


class Encoder(nn.Module):
    def __init__(self, layer: EncoderLayer, num_layers: int, norm: nn.LayerNorm | None):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, x: torch.Tensor, pos: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pos, padding)
        return self.norm(x) if self.norm is not None else x


class Transformer(nn.Module):
    """Batch-first wrapper around a sequence-first encoder (the official layout)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        layer = EncoderLayer(config.hidden_dim, config.nheads, config.dim_feedforward, config.dropout,
                             config.droppath, config.pre_norm)
        norm = nn.LayerNorm(config.hidden_dim) if config.pre_norm else None
        self.encoder = Encoder(layer, config.enc_layers, norm)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.d_model = config.hidden_dim

    def forward(self, src: torch.Tensor, padding: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        memory = self.encoder(src.permute(1, 0, 2), pos.permute(1, 0, 2), padding)
        return memory.transpose(0, 1)


def _init_embedding(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


class UniVTG(nn.Module):
    """Video + query tokens in; per-clip foreground probability, span offsets and saliency out."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.span_loss_type != "l1":
            raise ValueError(f"only span_loss_type 'l1' is supported (as in the official model); got "
                             f"{config.span_loss_type!r}")
        self.config = config
        hidden = config.hidden_dim
        self.transformer = Transformer(config)
        self.txt_position_embed = TextPositionEmbedding(config.max_q_l, hidden, config.input_dropout)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.token_type_embeddings.apply(_init_embedding)
        self.span_embed = ConvHead(hidden, hidden, 2)
        self.class_embed = ConvHead(hidden, hidden, 1)
        self.input_txt_proj = input_projection(config.t_feat_dim, hidden, config.n_input_proj, config.input_dropout)
        self.input_vid_proj = input_projection(config.v_feat_dim, hidden, config.n_input_proj, config.input_dropout)
        self.weightedpool = WeightedPool(hidden)

    def forward(self, src_txt: torch.Tensor, src_txt_mask: torch.Tensor, src_vid: torch.Tensor,
                src_vid_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        vid = self.input_vid_proj(src_vid)
        txt = self.input_txt_proj(src_txt)
        vid = vid + self.token_type_embeddings(torch.ones_like(src_vid_mask, dtype=torch.long))
        txt = txt + self.token_type_embeddings(torch.zeros_like(src_txt_mask, dtype=torch.long))

        src = torch.cat([vid, txt], dim=1)
        valid = torch.cat([src_vid_mask, src_txt_mask], dim=1).bool()
        pos_vid = sine_position_embedding(src_vid_mask, self.config.hidden_dim)
        pos_txt = self.txt_position_embed(txt) if self.config.use_txt_pos else torch.zeros_like(txt)
        memory = self.transformer(src, ~valid, torch.cat([pos_vid, pos_txt], dim=1))
        vid_mem = memory[:, : vid.shape[1]]

        pred_logits = self.class_embed(vid_mem).sigmoid()
        direction = torch.tensor((-1, 1), device=vid_mem.device)
        pred_spans = self.span_embed(vid_mem).sigmoid() * direction

        txt_pooled = self.weightedpool(txt, src_txt_mask).unsqueeze(1)
        saliency = F.cosine_similarity(vid, txt_pooled, dim=-1) + (src_vid_mask + 1e-45).log()
        return {
            "pred_logits": pred_logits,
            "pred_spans": pred_spans,
            "src_vid_mask": src_vid_mask,
            "vid_mem_proj": vid,
            "txt_mem_proj": txt_pooled,
            "saliency_scores": saliency,
        }
