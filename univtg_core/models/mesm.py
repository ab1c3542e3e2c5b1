"""MESM (AAAI'24, "Towards Balanced Alignment: Modal-Enhanced Semantic Modeling for Video Moment Retrieval").

The network as nn.Modules, with the official parameter names so that official checkpoints load with
strict=True (they omit the frozen text tower, whose keys contain `text_encoder`; ours never holds one: the
text input is the per-token features the tower would have made). The pieces, in forward order:

- input projections (LayerNorm -> Dropout -> Linear stacks) of video and words;
- FW-MESM (`enhance_encoder`): frames attend to the words; in training a masked-word pass through the same
  stack (or a separate feed-forward block when `share_MLP` is off) predicts the masked words;
- SS-MESM (`ss_reconstructor`): a masked sentence slot attends to the video; its output (the reconstructed
  sentence) is prepended to the words;
- the aligner (`t2v_encoder`): frames attend to [reconstructed sentence; words];
- a post-norm encoder with a global token, a DAB-style anchor decoder, class/span/saliency heads;
- the negative branch: the same stacks with a query of another video, for the saliency loss.

Every T2V layer of the official code also builds an attention mask in the wrong batch layout (sample n, head
h reads the mask of sample (n * nheads + h) mod N), so a batched row depends on the other rows. By default the
mask is applied correctly (a batched row equals the sample run alone); `official_batch_mask=True` reproduces
the official layout exactly, for anyone reproducing published evaluation numbers.
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ._blocks import (
    MLP,
    LinearLayer,
    TrainablePositionEmbedding,
    inverse_sigmoid,
    projector,
    sine_position_embedding,
)
from ._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput
from ._registry import Architecture, CheckpointContents, register
from .dab_decoder import AnchorDecoder, AnchorDecoderLayer

logger = logging.getLogger(__name__)

TEXT_PATHS = ("clip", "glove_pkl", "glove_ids")
DATASETS = ("charades", "charades-cg", "charades-cd", "tacos", "qvhighlights")
# Widths of the video features the official configs use, by the name their feature files carry.
KNOWN_VIDEO_SOURCES = {"clip": 512, "slowfast": 2304, "vgg": 4096, "c3d": 4096, "i3d": 1024}


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class MESMConfig:
    """Architecture and preprocessing settings; names follow MESM's options so an `opt` maps onto them.

    `v_feat_dim` counts the two tef columns when `use_tef` is on (the checkpoint's input width).
    `text_path`: `clip` (per-token CLIP `ln_final` rows), `glove_pkl` (GloVe vectors from a vocabulary
    pickle: the mask comes from the normalised rows), `glove_ids` (GloVe vectors looked up from word ids, as
    TACoS: the mask comes from the ids, i.e. non-zero rows).
    `video_sources`: (name, width) of each raw video source in concatenation order (widths sum to
    `video_feature_dim`).
    """

    v_feat_dim: int = 2818
    t_feat_dim: int = 512
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.1
    input_dropout: float = 0.5
    num_recfw_layers: int = 2
    t2v_layers: int = 2
    enc_layers: int = 2
    dec_layers: int = 2
    num_queries: int = 10
    n_input_proj: int = 2
    max_words_l: int = 16
    max_video_l: int = 194
    use_txt_pos: bool = False
    aux_loss: bool = True
    rec_fw: bool = True
    rec_ss: bool = True
    num_recss_layers: int = 4
    share_MLP: bool = True
    vocab_size: int = 1111
    text_path: str = "clip"
    normalize_txt: bool = True
    normalize_video: bool = True
    use_tef: bool = True
    clip_len: float = 1.0  # seconds per feature row; -1: positions normalised by the video (TACoS)
    dataset_name: str = "charades"
    video_sources: tuple[tuple[str, int], ...] = (("clip", 512), ("slowfast", 2304))
    max_ts_val: float = 150.0  # the official post-processor's clamp (seconds)
    official_batch_mask: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_sources", tuple((str(n), int(d)) for n, d in self.video_sources))
        self.validate()

    @property
    def video_feature_dim(self) -> int:
        """Width of the raw concatenated video features (without the tef columns)."""
        return self.v_feat_dim - (2 if self.use_tef else 0)

    @property
    def num_word_classes(self) -> int:
        """Outputs of the masked-word head: CLIP adds <unknown>, <start>, <end>; GloVe only <unknown>."""
        return self.vocab_size + (3 if self.text_path == "clip" else 1)

    def validate(self) -> None:
        """Refuse settings the official code cannot run, naming the setting and the accepted values."""
        positive = ["v_feat_dim", "t_feat_dim", "hidden_dim", "nheads", "dim_feedforward", "t2v_layers",
                    "enc_layers", "dec_layers", "num_queries", "max_words_l", "max_video_l", "vocab_size"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise CheckpointError(f"MESM setting {name} must be a positive integer, got {value!r}")
        for name in ("num_recfw_layers", "num_recss_layers"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (1 if self._layers_needed(name) else 0):
                raise CheckpointError(f"MESM setting {name} must be a positive integer, got {value!r}")
        if self.hidden_dim % self.nheads:
            raise CheckpointError(f"MESM setting hidden_dim ({self.hidden_dim}) must be divisible by nheads "
                                  f"({self.nheads})")
        if self.hidden_dim % 4:
            raise CheckpointError(f"MESM setting hidden_dim must be a multiple of 4 (the anchor sine embedding "
                                  f"splits it into interleaved sin/cos halves), got {self.hidden_dim}")
        if self.n_input_proj not in (1, 2, 3):
            raise CheckpointError(f"MESM setting n_input_proj must be 1, 2 or 3, got {self.n_input_proj!r}")
        for name in ("dropout", "input_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise CheckpointError(f"MESM setting {name} must be in [0, 1), got {value!r}")
        if self.text_path not in TEXT_PATHS:
            raise CheckpointError(f"MESM setting text_path must be one of {', '.join(TEXT_PATHS)}, "
                                  f"got {self.text_path!r}")
        if self.dataset_name not in DATASETS:
            raise CheckpointError(f"MESM setting dataset_name must be one of {', '.join(DATASETS)}, "
                                  f"got {self.dataset_name!r}")
        if not float(self.max_ts_val) > 0:
            raise CheckpointError(f"MESM setting max_ts_val must be positive seconds, got {self.max_ts_val!r}")
        if not (self.clip_len > 0 or self.clip_len == -1):
            raise CheckpointError(f"MESM setting clip_len must be positive seconds or -1 (normalised "
                                  f"positions), got {self.clip_len!r}")
        if self.video_feature_dim < 1:
            raise CheckpointError(f"MESM setting v_feat_dim ({self.v_feat_dim}) leaves no video feature columns "
                                  f"besides the tef")
        widths = [d for _, d in self.video_sources]
        if not widths or min(widths) < 1 or sum(widths) != self.video_feature_dim:
            raise CheckpointError(
                f"MESM video sources {list(self.video_sources)} do not add up to the checkpoint's video width "
                f"{self.video_feature_dim} (v_feat_dim {self.v_feat_dim}, tef {'on' if self.use_tef else 'off'})")

    @property
    def input_spec(self) -> InputSpec:
        """Video sources in the checkpoint's concatenation order (CLIP then SlowFast for the C+SF checkpoints),
        CLIP per-token rows or GloVe vectors as text. A checkpoint of normalised positions (clip_len -1,
        TACoS) has no clip length of its own: its spec says 0 and the front end picks one."""
        text = FeatureSource("clip_tokens" if self.text_path == "clip" else "glove", self.t_feat_dim)
        return InputSpec(video=tuple(FeatureSource(n, d) for n, d in self.video_sources), text=text,
                         clip_len=float(self.clip_len) if self.clip_len > 0 else 0.0, window=self.max_video_l)

    def _layers_needed(self, name: str) -> bool:
        return self.rec_ss if name == "num_recss_layers" else self.rec_fw

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MESMConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _count_layers(keys: list[str], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _text_path_from_options(opt: Mapping[str, Any], t_feat_dim: int) -> str:
    tokenizer = opt.get("tokenizer_type")
    if tokenizer is None:
        return "clip" if t_feat_dim == 512 else "glove_pkl"
    if tokenizer == "CLIP":
        return "clip"
    if tokenizer == "GloVeNLTK" and opt.get("load_vocab_pkl", False):
        return "glove_pkl"
    if tokenizer in ("GloVeNLTK", "GloVeSimple"):
        return "glove_ids"
    raise CheckpointError(f"MESM option tokenizer_type must be CLIP, GloVeSimple or GloVeNLTK, got {tokenizer!r}")


def video_sources_from_options(feat_files: list[str] | None, width: int) -> tuple[tuple[str, int], ...]:
    """Name and width of each video source, in `feat_files` order, from the file names (clip_image.hdf5,
    slowfast.hdf5, vgg.hdf5, c3d.hdf5, ...) and the total width the checkpoint takes."""
    names = []
    for path in feat_files or []:
        stem = Path(str(path)).stem.lower()
        names.append(next((k for k in KNOWN_VIDEO_SOURCES if k in stem), stem or "video"))
    if not names:
        if width == 512 + 2304:
            return (("clip", 512), ("slowfast", 2304))
        if width == 512:
            return (("clip", 512),)
        return (("video", width),)
    known = [KNOWN_VIDEO_SOURCES.get(n) for n in names]
    unknown = [i for i, d in enumerate(known) if d is None]
    rest = width - sum(d for d in known if d is not None)
    if not unknown and rest == 0:
        return tuple(zip(names, known))
    if len(unknown) == 1 and rest > 0:
        known[unknown[0]] = rest
        return tuple(zip(names, known))
    if len(names) == 1:
        return ((names[0], width),)
    raise CheckpointError(
        f"cannot tell the widths of the MESM video sources {names} (feat_files {list(feat_files or [])}) from "
        f"the checkpoint's video width {width}; known widths: {KNOWN_VIDEO_SOURCES}")


def config_from_checkpoint(state_dict: Mapping[str, torch.Tensor], opt: Mapping[str, Any] | None = None,
                           **overrides: Any) -> MESMConfig:
    """The config of a MESM state dict: tensor shapes decide the dimensions, `opt` (the checkpoint's
    argparse options or opt.json) the rest; where the two disagree the shapes win (with a warning)."""
    opt = dict(opt or {})
    keys = list(state_dict)

    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointError(f"not a MESM checkpoint: it has no {key!r} tensor "
                                  f"(found {len(keys)} tensors, e.g. {keys[:3]})")
        return tuple(state_dict[key].shape)

    hidden = shape("global_rep_token")[0]
    rec_fw = "masked_token" in state_dict
    rec_ss = any(k.startswith("ss_reconstructor.") for k in keys)
    t_feat_dim = shape("input_txt_proj.0.LayerNorm.weight")[0]
    derived: dict[str, Any] = {
        "hidden_dim": hidden,
        "v_feat_dim": shape("input_vid_proj.0.LayerNorm.weight")[0],
        "t_feat_dim": t_feat_dim,
        "num_queries": shape("query_embed.weight")[0],
        "dim_feedforward": shape("transformer.encoder.layers.0.linear1.weight")[0],
        "n_input_proj": _count_layers(keys, "input_vid_proj."),
        "num_recfw_layers": _count_layers(keys, "enhance_encoder.t2v_encoder.layers."),
        "t2v_layers": _count_layers(keys, "t2v_encoder.t2v_encoder.layers."),
        "enc_layers": _count_layers(keys, "transformer.encoder.layers."),
        "dec_layers": _count_layers(keys, "transformer.decoder.layers."),
        "rec_fw": rec_fw,
        "rec_ss": rec_ss,
        "share_MLP": not any(".linear1_1." in k for k in keys),
        "max_words_l": shape("txt_position_embed.position_embeddings.weight")[0] - (1 if rec_ss else 0),
    }
    if rec_ss:
        derived["num_recss_layers"] = _count_layers(keys, "ss_reconstructor.recon_trans.layers.")
    text_path = _text_path_from_options(opt, t_feat_dim)
    if rec_fw:
        classes = shape("output_txt_proj.1.weight")[0]
        derived["vocab_size"] = classes - (3 if text_path == "clip" else 1)
    for name, value in derived.items():
        if name in opt and opt[name] is not None and name not in ("v_feat_dim",) and opt[name] != value:
            logger.warning("MESM checkpoint option %s=%r disagrees with its tensors (%r); using the tensors",
                           name, opt[name], value)
    values: dict[str, Any] = {}
    for f in fields(MESMConfig):
        if f.name in opt and opt[f.name] is not None:
            values[f.name] = opt[f.name]
    values.update(derived)
    values["text_path"] = text_path
    if "clip_len" in opt:
        values["clip_len"] = float(opt["clip_len"])
    if "max_ts_val" in opt:
        values["max_ts_val"] = float(opt["max_ts_val"])
    use_tef = bool(opt.get("use_tef", True))
    values["use_tef"] = use_tef
    values["video_sources"] = video_sources_from_options(opt.get("feat_files"), values["v_feat_dim"] - 2 * use_tef)
    for name in ("pre_norm", "position_embedding", "span_loss_type"):
        if name in opt:
            _refuse_unsupported(name, opt[name])
    values.update(overrides)
    try:
        return MESMConfig(**values)
    except TypeError as exc:
        raise CheckpointError(f"bad MESM setting: {exc}") from exc


def _refuse_unsupported(name: str, value: Any) -> None:
    """Options the official code accepts but cannot run (it raises deep inside); refused up front."""
    supported = {"pre_norm": (False,), "position_embedding": ("sine", "v2"), "span_loss_type": ("l1",)}[name]
    if value not in supported:
        raise CheckpointError(f"MESM option {name}={value!r} is not supported (the official code raises for it "
                              f"too); supported: {', '.join(map(repr, supported))}")


# ------------------------------------------------------------------------------------------------ blocks


def _pad_rows(chunks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length (Li, ...) tensors -> zero-padded (n, max Li, ...) and its (n, max Li) valid mask."""
    longest = max(len(c) for c in chunks)
    first = chunks[0]
    out = first.new_zeros((len(chunks), longest) + tuple(first.shape[1:]))
    mask = torch.zeros((len(chunks), longest), dtype=torch.bool, device=first.device)
    for i, c in enumerate(chunks):
        out[i, :len(c)] = c
        mask[i, :len(c)] = True
    return out, mask


def _expand_groups(values: torch.Tensor, sizes: list[int], repeats: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `values` into chunks of `sizes`, repeat chunk g `repeats[g]` times, pad: the official
    split_expand_and_pad (one padded row per query, holding its whole video group)."""
    chunks = []
    for chunk, count in zip(torch.split(values, sizes, dim=0), repeats):
        chunks.extend([chunk] * count)
    return _pad_rows(chunks)


class AttentionLayer(nn.Module):
    """torch attention + a PReLU feed-forward block, registered in the official order (keys self_attn.*,
    linear1, linear2, norm1, norm2, activation)."""

    def __init__(self, d: int, nheads: int, dim_ff: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nheads, dropout=dropout)
        self.linear1 = nn.Linear(d, dim_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = nn.PReLU()

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class T2VLayer(AttentionLayer):
    """One cross-attention layer: queries x attend to keys y; x1 = x + attn; out = LN2(x1 + FFN(LN1(x1))).

    The FFN reads LN1(x1) but the residual adds the un-normalised x1 (official). With `separate_mlm_ffn`
    (share_MLP off) the masked-word pass uses its own FFN and norms (`linear1_1`, ..., `norm2_1`).
    """

    def __init__(self, d: int, nheads: int, dim_ff: int, dropout: float, separate_mlm_ffn: bool = False):
        super().__init__(d, nheads, dim_ff, dropout)
        self.nhead = nheads
        self.separate_mlm_ffn = separate_mlm_ffn
        if separate_mlm_ffn:
            self.linear1_1 = nn.Linear(d, dim_ff)
            self.dropout_1 = nn.Dropout(dropout)
            self.linear2_1 = nn.Linear(dim_ff, d)
            self.norm1_1 = nn.LayerNorm(d)
            self.norm2_1 = nn.LayerNorm(d)
            self.dropout2_1 = nn.Dropout(dropout)

    def forward(self, keys: torch.Tensor, queries: torch.Tensor, key_pad: torch.Tensor, pos_k: torch.Tensor | None,
                query_pad: torch.Tensor, pos_q: torch.Tensor | None, is_mlm: bool = False,
                official_batch_mask: bool = False) -> torch.Tensor:
        """Sequence-first (L, N, d) tensors; *_pad are (N, L) with True at padding."""
        q = queries if pos_q is None else queries + pos_q
        k = keys if pos_k is None else keys + pos_k
        attn_mask = None
        if official_batch_mask:
            # Official: (query pad AND key pad) per sample, tiled nheads times along the batch axis, which torch
            # reads as row n * nheads + h -> sample n, head h: the mask of sample (n * nheads + h) mod N.
            both = query_pad[:, :, None] & key_pad[:, None, :]
            attn_mask = both.repeat(self.nhead, 1, 1)
        # In the correct layout the extra mask only hides padded keys, which key_pad hides already.
        attended = self.self_attn(q, k, value=keys, attn_mask=attn_mask, key_padding_mask=key_pad)[0]
        x1 = queries + self.dropout1(attended)
        if is_mlm and self.separate_mlm_ffn:
            h = self.linear2_1(self.dropout_1(self.activation(self.linear1_1(self.norm1_1(x1)))))
            return self.norm2_1(x1 + self.dropout2_1(h))
        return self.norm2(x1 + self.dropout2(self.feed_forward(self.norm1(x1))))


class T2VStack(nn.Module):
    """A stack of T2V layers (the official T2V_TransformerEncoder, keys layers.<i>.*); batch-first I/O."""

    def __init__(self, layer: T2VLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.official_batch_mask = False

    def forward(self, keys: torch.Tensor, queries: torch.Tensor, key_valid: torch.Tensor, query_valid: torch.Tensor,
                pos_k: torch.Tensor | None = None, pos_q: torch.Tensor | None = None,
                is_mlm: bool = False) -> torch.Tensor:
        """keys (N, Lk, d), queries (N, Lq, d), masks True where valid -> (N, Lq, d)."""
        keys_s = keys.transpose(0, 1)
        out = queries.transpose(0, 1)
        pos_k = None if pos_k is None else pos_k.transpose(0, 1)
        pos_q = None if pos_q is None else pos_q.transpose(0, 1)
        for layer in self.layers:
            out = layer(keys_s, out, ~key_valid, pos_k, ~query_valid, pos_q, is_mlm=is_mlm,
                        official_batch_mask=self.official_batch_mask)
        return out.transpose(0, 1)


class T2VEncoder(nn.Module):
    """The official T2VEncoder wrapper (keys t2v_encoder.layers.<i>.*)."""

    def __init__(self, d: int, nheads: int, dim_ff: int, dropout: float, num_layers: int,
                 separate_mlm_ffn: bool = False):
        super().__init__()
        self.t2v_encoder = T2VStack(T2VLayer(d, nheads, dim_ff, dropout, separate_mlm_ffn), num_layers)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.t2v_encoder(*args, **kwargs)


class EncoderLayer(AttentionLayer):
    """Post-norm self-attention layer with a PReLU feed-forward block."""

    def forward(self, src: torch.Tensor, key_pad: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, value=src, key_padding_mask=key_pad)[0]))
        return self.norm2(src + self.dropout2(self.feed_forward(src)))


class Transformer(nn.Module):
    """Encoder over [global token; frames] (the global token is masked as a key) and the anchor decoder."""

    def __init__(self, d: int, nheads: int, dim_ff: int, dropout: float, enc_layers: int, dec_layers: int):
        super().__init__()
        layer = EncoderLayer(d, nheads, dim_ff, dropout)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(enc_layers))
        # The shared anchor decoder with MESM's settings: PReLU feed-forward, one bbox_embed for all layers,
        # the query position projected into the cross-attention of the first layer only.
        layer = AnchorDecoderLayer(d, nheads, dim_ff, dropout, keep_query_pos=False, activation="prelu")
        self.decoder = AnchorDecoder(layer, dec_layers, nn.LayerNorm(d), d_model=d, query_dim=2, keep_query_pos=False,
                                     query_scale_type="cond_elewise", modulate_t_attn=True,
                                     bbox_embed_diff_each_layer=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.d_model = d

    def forward(self, src: torch.Tensor, video_valid: torch.Tensor, query_embed: torch.Tensor, pos: torch.Tensor,
                global_token: torch.Tensor, global_pos: torch.Tensor):
        """src/pos (N, L, d) -> hs (layers, N, nq, d), references (layers, N, nq, 2), memory (N, L, d),
        memory_global (N, d)."""
        n = src.shape[0]
        pad = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=src.device), ~video_valid], dim=1)
        x = torch.cat([global_token, src], dim=1).transpose(0, 1)
        pos_all = torch.cat([global_pos, pos], dim=1).transpose(0, 1)
        for layer in self.encoder.layers:
            x = layer(x, pad, pos_all)
        memory_global, memory = x[0], x[1:]
        anchors = query_embed.unsqueeze(1).repeat(1, n, 1)
        tgt = torch.zeros(anchors.shape[0], n, self.d_model, device=src.device, dtype=src.dtype)
        hs, references = self.decoder(tgt, memory, pad[:, 1:], pos_all[1:], anchors)
        return hs, references, memory.transpose(0, 1), memory_global


class SegSenRecon(nn.Module):
    """SS-MESM: each query's own sentence slot is replaced by a learned masked token and reconstructed from
    the video (the other slots hold the other sentences of the same video)."""

    def __init__(self, d: int, nheads: int, dim_ff: int, dropout: float, input_dropout: float, num_layers: int):
        super().__init__()
        self.masked_sent_token = nn.Parameter(torch.zeros(d))
        self.recon_trans = T2VStack(T2VLayer(d, nheads, dim_ff, dropout), num_layers)
        self.output_sent_proj = nn.Sequential(LinearLayer(d, d, input_dropout, relu=True),
                                              LinearLayer(d, d, input_dropout, relu=False))

    def forward(self, video: torch.Tensor, video_valid: torch.Tensor, slots: torch.Tensor, slots_valid: torch.Tensor,
                num_clips: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        own = torch.zeros(slots.shape[:2], dtype=torch.bool, device=slots.device)
        row = 0
        for k in num_clips:
            own[torch.arange(row, row + k), torch.arange(k)] = True
            row += k
        masked = torch.where(own[..., None], self.masked_sent_token.to(slots.dtype).expand_as(slots), slots)
        out = self.recon_trans(video, masked, video_valid, slots_valid)
        recon = F.normalize(out[own], dim=-1)
        return recon, self.output_sent_proj(recon)


# ------------------------------------------------------------------------------------------------- model


# Keys of an official collated batch that the forward does not read (passing **batch is fine).
OFFICIAL_BATCH_KEYS = {"words_id", "duration", "moment", "sentence", "words_label", "start_idx", "end_idx",
                       "pos_idx", "neg_idx", "qid", "video_id", "norm_moment", "norm_span", "saliency_label"}


def sample_negative_queries(num_clips: list[int], device: torch.device | None = None) -> torch.Tensor:
    """For each query, a random query of another video (torch.randperm, drawn as the official code draws)."""
    total = sum(num_clips)
    picks = []
    start = 0
    for k in num_clips:
        other = torch.ones(total, dtype=torch.bool)
        other[start:start + k] = False
        candidates = torch.where(other)[0]
        for _ in range(k):
            picks.append(candidates[torch.randperm(candidates.shape[0])][0])
        start += k
    return torch.stack(picks).to(device)


class MESM(GroundingModel, nn.Module):
    """The MESM network; `forward` is the official forward with text features in place of token ids."""

    architecture = "mesm"

    def __init__(self, config: MESMConfig):
        super().__init__()
        self.config = config
        c = config
        d = c.hidden_dim
        self.global_rep_token = nn.Parameter(torch.randn(d))
        self.global_rep_pos = nn.Parameter(torch.randn(d))
        if c.rec_fw:
            self.masked_token = nn.Parameter(torch.zeros(c.t_feat_dim))
            self.unknown_token = nn.Parameter(torch.zeros(c.t_feat_dim))
        # The official model builds the enhancer even when rec_fw is off (its keys are in every checkpoint).
        self.enhance_encoder = T2VEncoder(d, c.nheads, c.dim_feedforward, c.dropout, c.num_recfw_layers,
                                          separate_mlm_ffn=not c.share_MLP)
        self.t2v_encoder = T2VEncoder(d, c.nheads, c.dim_feedforward, c.dropout, c.t2v_layers)
        self.transformer = Transformer(d, c.nheads, c.dim_feedforward, c.dropout, c.enc_layers, c.dec_layers)
        self.txt_position_embed = TrainablePositionEmbedding(c.max_words_l + (1 if c.rec_ss else 0), d, c.input_dropout)
        self.span_embed = MLP(d, d, 2, 3)
        self.class_embed = nn.Linear(d, 2)  # class 0: foreground, 1: background
        self.query_embed = nn.Embedding(c.num_queries, 2)
        self.input_txt_proj = projector(c.t_feat_dim, d, c.n_input_proj, c.input_dropout)
        self.input_vid_proj = projector(c.v_feat_dim, d, c.n_input_proj, c.input_dropout)
        self.saliency_proj1 = nn.Linear(d, d)
        self.saliency_proj2 = nn.Linear(d, d)
        if c.rec_fw:
            self.output_txt_proj = nn.Sequential(LinearLayer(d, d, c.input_dropout, relu=True),
                                                 nn.Linear(d, c.num_word_classes))
        if c.rec_ss:
            self.ss_reconstructor = SegSenRecon(d, c.nheads, c.dim_feedforward, c.dropout, c.input_dropout,
                                                c.num_recss_layers)
        self.official_batch_mask = c.official_batch_mask

    # -- the official batched-mask switch ---------------------------------------------------------------
    @property
    def official_batch_mask(self) -> bool:
        """True: T2V layers tile their extra attention mask as the official code does (batched rows then
        depend on each other; reproduces io_batch/io_grouped and published evaluations); False: correct."""
        return self._official_batch_mask

    @official_batch_mask.setter
    def official_batch_mask(self, value: bool) -> None:
        self._official_batch_mask = bool(value)
        for module in self.modules():
            if isinstance(module, T2VStack):
                module.official_batch_mask = bool(value)

    # -- text -----------------------------------------------------------------------------------------------
    def prepare_text(self, words_feat: torch.Tensor, words_mask: torch.Tensor | None):
        """Per-token features -> (normalised words, mask, normalised sentence), in the order of the official
        text path (CLIP and GloVe ids: mean of the raw rows; GloVe pickle: normalise first, mask from rows)."""
        c = self.config
        words_feat = words_feat.float()
        if words_mask is not None:
            words_mask = words_mask.bool()[:, :words_feat.shape[1]]
            if words_mask.shape[1] < words_feat.shape[1]:
                words_mask = F.pad(words_mask, (0, words_feat.shape[1] - words_mask.shape[1]), value=False)
        if c.text_path == "glove_pkl":
            if words_mask is not None:
                words_feat = words_feat.masked_fill(~words_mask[..., None], 0)
            if c.normalize_txt:
                words_feat = F.normalize(words_feat, dim=-1, p=2, eps=1e-5)
            mask = words_feat.sum(dim=-1) != 0
            sentence = words_feat.sum(dim=1) / mask.sum(dim=1, keepdim=True)
            if c.normalize_txt:
                sentence = F.normalize(sentence, dim=-1, p=2, eps=1e-5)
            return words_feat, mask, sentence
        words_feat = words_feat[:, :c.max_words_l]
        if words_mask is None:
            mask = words_feat.abs().sum(dim=-1) != 0
        else:
            mask = words_mask[:, :c.max_words_l]
        words_feat = words_feat.masked_fill(~mask[..., None], 0)
        sentence = words_feat.sum(dim=1) / mask.sum(dim=1, keepdim=True)
        if c.normalize_txt:
            words_feat = F.normalize(words_feat, dim=-1, p=2, eps=1e-5)
            sentence = F.normalize(sentence, dim=-1, p=2, eps=1e-5)
        return words_feat, mask, sentence

    def _project_token(self, token: torch.Tensor) -> torch.Tensor:
        return self.input_txt_proj(token[None, None])

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, video_feat: torch.Tensor, video_mask: torch.Tensor, words_feat: torch.Tensor,
                words_mask: torch.Tensor | None = None, num_clips: torch.Tensor | list[int] | None = None, *,
                is_training: bool = False, dataset_name: str | None = None, with_negative: bool | None = None,
                neg_index: torch.Tensor | None = None, words_weight: torch.Tensor | None = None,
                unknown_mask: torch.Tensor | None = None, clip_mask: torch.Tensor | None = None,
                masked_words: torch.Tensor | None = None, mlm_rng: np.random.Generator | None = None,
                **batch_extras: Any) -> dict[str, Any]:
        """The official forward. video_feat (N, L, v_feat_dim) prepared (normalised, tef), video_mask (N, L);
        words_feat (N, T, t_feat_dim) per-token text features (CLIP hidden states or GloVe vectors), words_mask
        (N, T) or None (derived as the official code derives it); num_clips: queries per video, the queries of
        one video consecutive (default: one query per video).

        The negative branch (`neg_saliency_scores`, for the saliency loss) runs when the batch holds two or
        more videos (or `neg_index` is given), unless `with_negative=False`; with one video it is skipped (the
        official code crashes there). `is_training=True` adds the masked-word pass (needs unknown_mask,
        clip_mask and words_weight; `masked_words` fixes the masked positions, else they are drawn with
        `mlm_rng`, or numpy's global RNG as the official code does). The other keys of an official batch are
        accepted and ignored; anything else is a TypeError.
        """
        c = self.config
        unknown = sorted(set(batch_extras) - OFFICIAL_BATCH_KEYS)
        if unknown:
            raise TypeError(f"MESM.forward got unexpected arguments {unknown}; it reads video_feat, video_mask, "
                            f"words_feat, words_mask, num_clips and the keyword options in its docstring")
        dataset_name = dataset_name or c.dataset_name
        n = video_feat.shape[0]
        video_feat = video_feat.float()
        video_mask = video_mask.bool()
        num_clips = [1] * n if num_clips is None else [int(k) for k in torch.as_tensor(num_clips).tolist()]
        if sum(num_clips) != n or min(num_clips) < 1:
            raise ValueError(f"num_clips {num_clips} must be positive and add up to the batch size {n}")
        if words_feat.shape[0] != n:
            raise ValueError(f"words_feat has {words_feat.shape[0]} rows but video_feat {n}")

        words_feat, words_mask, sentence_feat = self.prepare_text(words_feat, words_mask)
        projed_video_feat = self.input_vid_proj(video_feat)
        projed_words_feat = self.input_txt_proj(words_feat)
        vid_position = sine_position_embedding(video_mask, c.hidden_dim)
        txt_position = (self.txt_position_embed(projed_words_feat) if c.use_txt_pos
                        else torch.zeros_like(projed_words_feat))

        if c.rec_fw:
            enhanced_video_feat = self.enhance_encoder(projed_words_feat, projed_video_feat, words_mask, video_mask,
                                                       pos_k=txt_position, pos_q=vid_position)
        else:
            enhanced_video_feat = projed_video_feat

        out: dict[str, Any] = {}
        if c.rec_ss:
            recon_feat, projed_recon_feat, slots = self._reconstruct_sentence(
                video_feat, video_mask, vid_position, sentence_feat, num_clips, dataset_name)
            expanded_words_feat = torch.cat([recon_feat.unsqueeze(1), projed_words_feat], dim=1)
            expanded_words_mask = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=video_feat.device),
                                             words_mask], dim=1)
        else:
            expanded_words_feat, expanded_words_mask = projed_words_feat, words_mask
        expanded_txt_position = (self.txt_position_embed(expanded_words_feat) if c.use_txt_pos
                                 else torch.zeros_like(expanded_words_feat))

        encoded = self.t2v_encoder(expanded_words_feat, enhanced_video_feat, expanded_words_mask, video_mask,
                                   pos_k=expanded_txt_position, pos_q=vid_position)
        global_token = self.global_rep_token.reshape(1, 1, -1).repeat(n, 1, 1)
        global_pos = self.global_rep_pos.reshape(1, 1, -1).repeat(n, 1, 1)
        hs, reference, memory, memory_global = self.transformer(encoded, video_mask, self.query_embed.weight,
                                                                vid_position, global_token, global_pos)
        outputs_class = self.class_embed(hs)
        outputs_coord = (self.span_embed(hs) + inverse_sigmoid(reference)).sigmoid()
        saliency = self._saliency(memory, memory_global)

        out.update({"pred_logits": outputs_class[-1], "pred_spans": outputs_coord[-1], "saliency_scores": saliency})

        if with_negative is None:
            with_negative = neg_index is not None or len(num_clips) > 1
        if with_negative:
            if neg_index is None:
                if len(num_clips) < 2:
                    raise ValueError("the negative branch needs queries of two or more videos (or a neg_index)")
                neg_index = sample_negative_queries(num_clips, video_feat.device)
            neg_index = torch.as_tensor(neg_index, device=video_feat.device).long()
            out["neg_saliency_scores"] = self._negative_saliency(
                neg_index, expanded_words_feat, expanded_words_mask, expanded_txt_position, projed_video_feat,
                video_mask, vid_position, global_token, global_pos)
            out["neg_index"] = neg_index

        if c.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_spans": b}
                                  for a, b in zip(outputs_class[:-1], outputs_coord[:-1])]
        if c.rec_ss:
            out.update({
                "projed_video_feat": projed_video_feat, "recon_feat": recon_feat,
                "projed_recon_feat": projed_recon_feat, "expanded_words_feat": expanded_words_feat,
                "expanded_words_mask": expanded_words_mask, "enhanced_video_feat": enhanced_video_feat,
                "projed_words_feat": projed_words_feat,
            })
        if c.rec_fw and is_training:
            if unknown_mask is None or clip_mask is None:
                raise ValueError("the masked-word pass (is_training with rec_fw) needs unknown_mask and clip_mask")
            logits, masked = self._masked_word_logits(projed_words_feat, words_mask, projed_video_feat, vid_position,
                                                      txt_position, unknown_mask.bool(), clip_mask.bool(),
                                                      words_weight, masked_words, mlm_rng)
            out.update({"words_mask": words_mask, "recfw_words_logit": logits, "masked_words": masked})
        return out

    def _saliency(self, memory: torch.Tensor, memory_global: torch.Tensor) -> torch.Tensor:
        return torch.sum(self.saliency_proj1(memory) * self.saliency_proj2(memory_global).unsqueeze(1),
                         dim=-1) / np.sqrt(self.config.hidden_dim)

    def _reconstruct_sentence(self, video_feat, video_mask, vid_position, sentence_feat, num_clips, dataset_name):
        if dataset_name == "qvhighlights":
            # Official: each query's keys are its video group's valid rows, all k copies concatenated.
            lengths = [int(m.sum()) for m in torch.split(video_mask, num_clips)]
            batched_vid, batched_mask = _expand_groups(video_feat[video_mask], lengths, num_clips)
        else:
            batched_vid, batched_mask = video_feat, video_mask
        slots, slots_mask = _expand_groups(sentence_feat, num_clips, num_clips)
        batched_vid = self.input_vid_proj(batched_vid)
        slots = self.input_txt_proj(slots)
        recon, projed = self.ss_reconstructor(batched_vid, batched_mask, slots, slots_mask, num_clips)
        return recon, projed, slots

    def _negative_saliency(self, neg_index, expanded_words_feat, expanded_words_mask, expanded_txt_position,
                           projed_video_feat, video_mask, vid_position, global_token, global_pos) -> torch.Tensor:
        c = self.config
        neg_expanded = expanded_words_feat[neg_index]
        neg_expanded_mask = expanded_words_mask[neg_index]
        neg_expanded_pos = expanded_txt_position[neg_index]
        skip = 1 if c.rec_ss else 0
        if c.rec_fw:
            neg_enhanced = self.enhance_encoder(neg_expanded[:, skip:], projed_video_feat, neg_expanded_mask[:, skip:],
                                                video_mask, pos_k=neg_expanded_pos[:, skip:], pos_q=vid_position)
        else:
            neg_enhanced = projed_video_feat
        neg_encoded = self.t2v_encoder(neg_expanded, neg_enhanced, neg_expanded_mask, video_mask,
                                       pos_k=neg_expanded_pos, pos_q=vid_position)
        _, _, neg_memory, neg_memory_global = self.transformer(neg_encoded, video_mask, self.query_embed.weight,
                                                               vid_position, global_token, global_pos)
        return self._saliency(neg_memory, neg_memory_global)

    def _masked_word_logits(self, projed_words_feat, words_mask, projed_video_feat, vid_position, txt_position,
                            unknown_mask, clip_mask, words_weight, masked_words, mlm_rng):
        t = projed_words_feat.shape[1]
        unknown_mask = unknown_mask[:, :t]
        unknown = self._project_token(self.unknown_token)
        words = torch.where(unknown_mask[..., None], unknown.expand_as(projed_words_feat), projed_words_feat)
        if masked_words is None:
            masked_words = draw_masked_words(words_mask, words_weight, mlm_rng)
        masked_words = masked_words.bool().to(words.device)[:, :t]
        mask_token = self._project_token(self.masked_token)
        words = torch.where(masked_words[..., None], mask_token.expand_as(words), words)
        lengths = clip_mask.sum(dim=1).tolist()
        frames, frames_mask = _pad_rows(list(torch.split(projed_video_feat[clip_mask], lengths)))
        frames_pos, _ = _pad_rows(list(torch.split(vid_position[clip_mask], lengths)))
        enhanced = self.enhance_encoder(frames, words, frames_mask, words_mask, pos_k=frames_pos, pos_q=txt_position,
                                        is_mlm=True)
        return self.output_txt_proj(enhanced), masked_words

    # -- the product's view (the registry contract) -------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec

    @property
    def text_token_limit(self) -> int:
        """Tokens the official extractor kept (start + max_words_l - 2 BPE tokens + end)."""
        return self.config.max_words_l

    def query_input(self, query) -> QueryInput:
        from .mesm_inputs import query_rows

        return query_rows(query, self.config)

    def predict_windows(self, video: np.ndarray, query: QueryInput, clip_len: float) -> WindowOutput:
        from .mesm_inputs import prepare_windows, saliency_per_clip

        video = np.asarray(video, dtype=np.float32)
        if video.ndim != 3:
            raise ValueError(f"video must be (windows, clips, {self.config.video_feature_dim}), got {video.shape}")
        b, length, _ = video.shape
        feats = prepare_windows(video, self.config)
        device = next(self.parameters()).device
        tokens = torch.from_numpy(np.ascontiguousarray(query.tokens, dtype=np.float32)).to(device)
        with torch.no_grad():
            out = self(video_feat=torch.from_numpy(feats).to(device),
                       video_mask=torch.ones(feats.shape[:2], dtype=torch.bool, device=device),
                       words_feat=tokens[None].expand(b, -1, -1), words_mask=None, with_negative=False)
        result = self.decode_outputs(out, torch.ones(feats.shape[:2], dtype=torch.bool), clip_len,
                                     durations=np.full(b, length * clip_len, dtype=np.float64))
        saliency = saliency_per_clip(result.saliency, length, self.config.max_video_l)
        return WindowOutput(result.windows, result.scores, saliency)

    def decode_outputs(self, outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:
        from .mesm_postprocess import decode_windows

        return decode_windows(outputs, video_mask, clip_len, durations)


# ------------------------------------------------------------------------------------------------ masking


def draw_masked_words(words_mask: torch.Tensor, words_weight: torch.Tensor | None,
                      rng: np.random.Generator | None = None) -> torch.Tensor:
    """The official choice of masked words: max(l // 3, 1) of the l valid tokens (none when l <= 1), without
    replacement, with probability proportional to `words_weight` (2 for content words, 1 otherwise, 0 for the
    start/end tokens). Without `rng` numpy's global RNG draws, so seeding it reproduces the official draw."""
    lengths = words_mask.count_nonzero(dim=1).tolist()
    masked = torch.zeros_like(words_mask, dtype=torch.bool)
    weight = None if words_weight is None else F.normalize(words_weight.float().cpu(), dim=1, p=1)
    choose = np.random.choice if rng is None else rng.choice
    for i, length in enumerate(lengths):
        if length <= 1:
            continue
        count = max(length // 3, 1)
        p = None
        if weight is not None:
            p = weight[i, :length].numpy().astype(np.float64)
            if p.sum() <= 0 or np.count_nonzero(p) < count:
                p = None  # the official code raises here (all-zero weights); draw uniformly instead
            else:
                p = p / p.sum() if abs(p.sum() - 1) > 1e-6 else weight[i, :length].numpy()
        masked[i, choose(np.arange(0, length), count, replace=False, p=p)] = True
    return masked


# ------------------------------------------------------------------------------------------------ loading

# Everything an official MESM checkpoint pickles besides tensors and plain containers.
SAFE_GLOBALS = [argparse.Namespace, torch.device]


@dataclass
class MESMCheckpoint:
    """What a MESM checkpoint file holds, read safely."""

    state_dict: OrderedDict
    options: dict = field(default_factory=dict)
    epoch: int | None = None
    raw: dict = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.device):
        return value.type
    return value


def _warn_without_options(name: str) -> None:
    logger.warning("%s has no options (no opt in the file, no opt.json beside it): the number of heads and the "
                   "preprocessing are MESM's defaults (nheads 8, clip_len 1, CLIP + SlowFast at 2816 wide)", name)


def drop_text_encoder(state: Mapping[str, torch.Tensor]) -> OrderedDict:
    """The official checkpoints omit the frozen text tower; ours never holds one: keys naming it are dropped."""
    return OrderedDict((k, v) for k, v in state.items() if "text_encoder" not in k)


def read_mesm_checkpoint(path: str | Path) -> MESMCheckpoint:
    """The checkpoint through the one reader (`models.read_checkpoint`: torch.load(weights_only=True) with only
    argparse.Namespace and torch.device allowed, `module.` prefixes stripped); options from its `opt`, else
    opt.json beside it; keys containing `text_encoder` dropped."""
    from ._loading import read_checkpoint

    contents = read_checkpoint(path, tuple(SAFE_GLOBALS))
    if not contents.state_dict or not all(isinstance(v, torch.Tensor) for v in contents.state_dict.values()):
        raise CheckpointError(f"{path} has no state dict of tensors under 'model'")
    options = {k: _plain(v) for k, v in contents.options.items()}
    return MESMCheckpoint(drop_text_encoder(contents.state_dict), options, contents.checkpoint.get("epoch"),
                          contents.checkpoint)


def build_mesm(config: MESMConfig, state_dict: Mapping[str, torch.Tensor] | None = None) -> MESM:
    """A MESM for `config`; with a state dict, loaded strictly (mismatches are refused with the keys named)."""
    model = MESM(config)
    if state_dict is not None:
        expected = model.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        wrong = [f"{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})"
                 for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            parts = []
            for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
                if items:
                    parts.append(f"{len(items)} {label} ({', '.join(items[:4])}{', ...' if len(items) > 4 else ''})")
            raise CheckpointError("the MESM checkpoint does not fit the architecture its options describe: "
                                  + "; ".join(parts))
        model.load_state_dict(state_dict, strict=True)
    return model


def load_mesm(path: str | Path, device: str | torch.device | None = None, **overrides: Any) -> MESM:
    """An official (or our) MESM checkpoint -> the model in eval mode on `device` (default: pick_device).
    `overrides` set config fields, e.g. official_batch_mask=True."""
    from ..device import pick_device

    ckpt = read_mesm_checkpoint(path)
    if not ckpt.options:
        _warn_without_options(Path(path).name)
    config = config_from_checkpoint(ckpt.state_dict, ckpt.options, **overrides)
    model = build_mesm(config, ckpt.state_dict)
    logger.info("loaded MESM from %s (epoch %s): hidden %d, %d queries, text %s, video %s", path, ckpt.epoch,
                config.hidden_dim, config.num_queries, config.text_path, list(config.video_sources))
    return model.to(pick_device(device)).eval()


def official_options(config: MESMConfig, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """MESM's option names for `config` (what its `opt` holds; v_feat_dim counts the tef columns, as in the
    checkpoint), updated with `extra` (training options)."""
    tokenizer, pkl = {"clip": ("CLIP", False), "glove_pkl": ("GloVeNLTK", True), "glove_ids": ("GloVeNLTK", False)}[
        config.text_path]
    names = {"clip": "clip_image"}
    options = {k: v for k, v in config.to_dict().items()
               if k not in ("text_path", "video_sources", "official_batch_mask")}
    options.update(tokenizer_type=tokenizer, load_vocab_pkl=pkl, pre_norm=False, position_embedding="sine",
                   span_loss_type="l1", device="cuda",
                   feat_files=[f"{names.get(n, n)}.hdf5" for n, _ in config.video_sources])
    options.update(extra or {})
    return options


def save_mesm_checkpoint(path: str | Path, model: MESM, options: Mapping[str, Any] | None = None, epoch: int = -1,
                         optimizer: torch.optim.Optimizer | None = None, lr_scheduler: Any = None) -> Path:
    """Write a checkpoint in the official training script's format (dict of model, optimizer, lr_scheduler,
    epoch, opt as an argparse.Namespace with device a torch.device), so the official code loads it too."""
    opt = official_options(model.config, options)
    opt["device"] = torch.device(str(opt.get("device", "cuda")))
    ckpt: dict[str, Any] = {"model": OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items()
                                                 if "text_encoder" not in k)}
    ckpt["optimizer"] = optimizer.state_dict() if optimizer is not None else None
    if lr_scheduler is not None:
        ckpt["lr_scheduler"] = lr_scheduler.state_dict()
    ckpt["epoch"] = int(epoch)
    ckpt["opt"] = argparse.Namespace(**opt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def with_config(model: MESM, **changes: Any) -> MESM:
    """The same weights under a changed (non-architectural) config, e.g. official_batch_mask."""
    new = build_mesm(replace(model.config, **changes), model.state_dict())
    return new.to(next(model.parameters()).device).train(model.training)


# ------------------------------------------------------------------------------------------------ registry

# Present in every MESM checkpoint (the enhancer is built even with rec_fw off) and in no other architecture's.
SIGNATURE_KEYS = ("global_rep_token", "global_rep_pos", "enhance_encoder.t2v_encoder.layers.0.linear1.weight",
                  "t2v_encoder.t2v_encoder.layers.0.linear1.weight", "saliency_proj1.weight", "query_embed.weight")


def config_from_contents(contents: CheckpointContents) -> MESMConfig:
    """The registry's view of `config_from_checkpoint`: a checkpoint read by `models.read_checkpoint`."""
    options = {k: _plain(v) for k, v in contents.options.items()}
    if not options:
        _warn_without_options(contents.path.name)
    return config_from_checkpoint(drop_text_encoder(contents.state_dict), options)


ARCHITECTURE = register(Architecture(
    name="mesm",
    summary="MESM (AAAI'24): DETR-style moment retrieval with frame-word and segment-sentence enhancement",
    module=MESM,
    config_from_checkpoint=config_from_contents,
    model_ids=("mesm",),
    signature_keys=SIGNATURE_KEYS,
    safe_globals=tuple(SAFE_GLOBALS),
    filter_state_dict=drop_text_encoder,
    features="video: one or several sources (CLIP, SlowFast, VGG, C3D, ...) in the checkpoint's order, each "
             "L2-normalised, tef appended by the model; text: CLIP per-token ln_final rows (start + at most "
             "max_words_l - 2 tokens + end) or 300-d GloVe vectors",
    training="univtg_core.training.recipes.mesm:RECIPE",
    checkpoints="MESM's released checkpoints (Charades-STA C+SF/C and VGG/GloVe, Charades-CG, QVHighlights, TACoS) "
                "load; all of them need SlowFast, VGG, C3D or GloVe features, so only CLIP-only ones (trained "
                "here) run on a user's video",
))


__all__ = ["ARCHITECTURE", "MESM", "MESMCheckpoint", "MESMConfig", "build_mesm", "config_from_checkpoint",
           "config_from_contents", "draw_masked_words", "drop_text_encoder", "load_mesm", "official_options",
           "read_mesm_checkpoint", "sample_negative_queries", "save_mesm_checkpoint", "video_sources_from_options",
           "with_config"]
