"""UniVTG (Lin et al., ICCV 2023): the network, its config, its input preparation and its one decoder.

Parameter names, initialisation and arithmetic follow the official model, so official checkpoints load with
strict=True and give the official outputs: post-norm encoder layers with exact GELU, a sine position
embedding of the video mask's cumulative sum, attention-pooled text for the saliency head, and three-layer
Conv1d heads that run over the whole padded sequence. The same seed draws the official initial weights.

The official forward stays `forward(src_txt, src_txt_mask, src_vid, src_vid_mask)`; the contract methods
(`query_input`, `predict_windows`, `decode_outputs`) are the product's view of it.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import re
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, QueryError
from ..postprocess import clip_anchors, l2_normalize, tef
from ..query import Query
from ._blocks import (
    ConvStack,
    TrainablePositionEmbedding,
    drop_path,
    mask_logits,
    projector,
    sine_position_embedding,
)
from ._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput, video_sources
from ._registry import Architecture, CheckpointContents, as_bool, register

logger = logging.getLogger(__name__)

# The official text extractor (UniVTG's txt2clip, Moment-DETR's) keeps the start token, at most 30 BPE tokens
# and the end token: 32 rows, the released checkpoints' max_q_l.
OFFICIAL_TEXT_ROWS = 32
TEF_COLUMNS = 2


@dataclass(frozen=True)
class UniVTGConfig:
    """Architecture settings. Names follow UniVTG's options, except the two widths, which say what they hold:
    `video_dim` is the width of the clip features (the `tef` columns not included; the official `v_feat_dim`
    includes them after parsing), `text_dim` the width of a query token (official `t_feat_dim`)."""

    video_dim: int = 512
    text_dim: int = 512
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
    video_types: str | None = None  # the official `v_feat_types` ("clip", "slowfast_clip"), when known

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def video_input_dim(self) -> int:
        """What the video projection reads: the clip features plus the tef columns."""
        return self.video_dim + (TEF_COLUMNS if self.use_tef else 0)

    @property
    def input_spec(self) -> InputSpec:
        sources = video_sources(self.video_types, self.video_dim) if self.video_dim else ()
        return InputSpec(video=sources, text=FeatureSource("clip_tokens", self.text_dim),
                         clip_len=float(self.clip_length), window=int(self.max_v_l))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UniVTGConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def config_problems(config: UniVTGConfig) -> list[str]:
    """What is wrong with a config, one phrase per setting (empty when it can be built)."""
    problems = []

    def need(ok: bool, text: str) -> None:
        if not ok:
            problems.append(text)

    ints = ("video_dim", "text_dim", "hidden_dim", "enc_layers", "nheads", "dim_feedforward", "n_input_proj",
            "max_q_l", "max_v_l")
    for name in ints:
        value = getattr(config, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            problems.append(f"{name} must be an integer, got {value!r}")
    if problems:
        return problems
    for name in ("text_dim", "hidden_dim", "enc_layers", "nheads", "dim_feedforward", "max_q_l", "max_v_l"):
        need(getattr(config, name) > 0, f"{name} must be positive, got {getattr(config, name)}")
    need(config.video_dim >= 0, f"video_dim (v_feat_dim without tef) must be >= 0, got {config.video_dim}")
    need(config.video_dim + (TEF_COLUMNS if config.use_tef else 0) > 0,
         "the model reads no video input (video_dim 0 without tef)")
    if config.nheads > 0 and config.hidden_dim > 0:
        need(config.hidden_dim % config.nheads == 0,
             f"hidden_dim {config.hidden_dim} must be divisible by nheads {config.nheads}")
    need(1 <= config.n_input_proj <= 3, f"n_input_proj must be 1, 2 or 3, got {config.n_input_proj}")
    for name in ("input_dropout", "dropout", "droppath"):
        value = getattr(config, name)
        need(isinstance(value, (int, float)) and 0 <= value < 1, f"{name} must lie in [0, 1), got {value!r}")
    clip = config.clip_length
    need(isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0,
         f"clip_length must be a positive number of seconds, got {clip!r}")
    need(config.span_loss_type == "l1",
         f"span_loss_type must be 'l1' (the official model implements only it), got {config.span_loss_type!r}")
    return problems


# ------------------------------------------------------------------------------------------------------
# Network
class EncoderLayer(nn.Module):
    """Self-attention + GELU feed-forward; positions go into queries and keys only; drop-path on both
    residuals. Post-norm as the official layer; `pre_norm` is DETR's pre-norm order (the official UniVTG
    layer has no pre-norm forward at all)."""

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

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.droppath, self.training, batch_dim=1)  # sequence-first: samples on dim 1

    def forward(self, x: torch.Tensor, pos: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self._drop(self._attend(self.norm1(x), pos, padding))
            return x + self._drop(self._feed_forward(self.norm2(x)))
        x = self.norm1(x + self._drop(self._attend(x, pos, padding)))
        return self.norm2(x + self._drop(self._feed_forward(x)))


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

    def __init__(self, config: UniVTGConfig):
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


class WeightedPool(nn.Module):
    """Attention pooling of text tokens into one sentence vector (padded tokens get -1e30)."""

    def __init__(self, dim: int):
        super().__init__()
        weight = torch.empty(dim, 1)
        nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        alpha = torch.tensordot(x, self.weight, dims=1)
        alpha = torch.softmax(mask_logits(alpha, mask.unsqueeze(2)), dim=1)
        return torch.matmul(x.transpose(1, 2), alpha).squeeze(2)


def _init_embedding(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


class UniVTG(nn.Module, GroundingModel):
    """Video + query tokens in; per-clip foreground probability, span offsets and saliency out."""

    architecture = "univtg"

    def __init__(self, config: UniVTGConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        # Built in the official order, so that one seed gives the official initial weights.
        self.transformer = Transformer(config)
        self.txt_position_embed = TrainablePositionEmbedding(config.max_q_l, hidden, config.input_dropout)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.token_type_embeddings.apply(_init_embedding)
        self.span_embed = ConvStack(hidden, hidden, 2)
        self.class_embed = ConvStack(hidden, hidden, 1)
        self.input_txt_proj = projector(config.text_dim, hidden, config.n_input_proj, config.input_dropout)
        self.input_vid_proj = projector(config.video_input_dim, hidden, config.n_input_proj, config.input_dropout)
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

    # -- the contract ----------------------------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec

    @property
    def text_token_limit(self) -> int:
        """Start + at most 30 BPE tokens + end, as the official extractor (and Moment-DETR's) kept them."""
        return OFFICIAL_TEXT_ROWS

    def query_input(self, query: Query | np.ndarray) -> QueryInput:
        """Encoder-made text rows as the official extractor made them (start + at most 30 BPE tokens + end,
        which the encoder must have cut: see `text_token_limit`), rows after them (an image query's) kept,
        dataset tokens as they are; then L2-normalised as the official dataset does."""
        if not isinstance(query, Query):
            query = Query(np.asarray(query, dtype=np.float32))
        tokens = query.tokens
        if tokens is None or len(tokens) == 0:
            raise QueryError("the query has no token rows (the model reads tokens); give a text or an image")
        given = len(tokens)
        if tokens.shape[1] != self.config.text_dim:
            raise CheckpointError(f"the model expects query tokens of width {self.config.text_dim}, got "
                                  f"{tokens.shape[1]}; encode the query with the CLIP model it was trained with")
        if query.text_rows is not None and query.text_rows > OFFICIAL_TEXT_ROWS:
            # CLIP's end row depends on where the sequence ends: the official 32 rows cannot be cut out of a
            # longer sentence's rows, they must be encoded from the cut token ids.
            raise QueryError(f"the query's text has {query.text_rows} token rows; this model reads at most "
                             f"{OFFICIAL_TEXT_ROWS}, encoded from the cut sentence: encode it with "
                             f"encoder.encode_query(text, token_limit=model.text_token_limit) (Grounder does)")
        if self.config.use_txt_pos and len(tokens) > self.config.max_q_l:
            tokens = tokens[: self.config.max_q_l]  # its learned text positions stop there
        if self.config.normalize_text:
            tokens = l2_normalize(tokens)
        return QueryInput(np.ascontiguousarray(tokens, dtype=np.float32), rows_read=len(tokens), rows_given=given)

    def prepare_video(self, video: np.ndarray) -> np.ndarray:
        """(B, L, D) raw clip features -> the model's video input: each row L2-normalised, then the tef columns
        [i / L, (i + 1) / L] of its own window appended, as the official demo and dataset do."""
        video = np.asarray(video, dtype=np.float32)
        if self.config.normalize_video:
            video = l2_normalize(video)
        if self.config.use_tef:
            n = video.shape[1]
            video = np.concatenate([video, np.broadcast_to(tef(n), (len(video), n, TEF_COLUMNS))], axis=2)
        return np.ascontiguousarray(video, dtype=np.float32)

    @torch.inference_mode()
    def predict_windows(self, video: np.ndarray, query: QueryInput, clip_len: float) -> WindowOutput:
        video = np.asarray(video, dtype=np.float32)
        if video.ndim == 2:
            video = video[None]
        if video.shape[2] != self.config.video_dim:
            raise CheckpointError(f"the model expects video features of width {self.config.video_dim} "
                                  f"({self.input_spec.describe_video()}), got {video.shape[2]}; index the video "
                                  f"with the features it was trained on")
        param = next(self.parameters())
        src_vid = torch.from_numpy(self.prepare_video(video)).to(param.device, param.dtype)
        src_txt = torch.from_numpy(query.tokens).to(param.device, param.dtype)[None].expand(len(video), -1, -1)
        vid_mask = torch.ones(src_vid.shape[:2], device=param.device, dtype=param.dtype)
        txt_mask = torch.ones(src_txt.shape[:2], device=param.device, dtype=param.dtype)
        outputs = self(src_txt=src_txt, src_txt_mask=txt_mask, src_vid=src_vid, src_vid_mask=vid_mask)
        return self.decode_outputs(outputs, vid_mask, clip_len)

    def decode_outputs(self, outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:
        """Every clip is a candidate: window = (anchor + offsets) * L * clip_len, anchor (i + clip_len/2) / L,
        in float32 as the official demo; score = its foreground probability. UniVTG's training targets are
        fractions of L * clip_len too, so `durations` is not used."""
        scores = outputs["pred_logits"][..., 0].detach().float().cpu().numpy()
        spans = outputs["pred_spans"].detach().float().cpu().numpy()
        saliency = outputs["saliency_scores"].detach().float().cpu().numpy()
        mask = np.asarray(video_mask.detach().float().cpu() if torch.is_tensor(video_mask) else video_mask) > 0
        windows = np.zeros_like(spans)
        for row, n in enumerate(mask.sum(1).astype(int)):
            anchors = clip_anchors(n, clip_len)[:, None]
            windows[row, :n] = (spans[row, :n] + anchors) * np.float32(n) * np.float32(clip_len)
        return WindowOutput(windows=windows, scores=scores, saliency=saliency,
                            valid=None if mask.all() else mask)


# ------------------------------------------------------------------------------------------------------
# Checkpoints
SIGNATURE_KEYS = ("input_vid_proj.0.LayerNorm.weight", "input_txt_proj.0.LayerNorm.weight",
                  "token_type_embeddings.weight", "txt_position_embed.position_embeddings.weight")
# Present in every UniVTG checkpoint and in no DETR-style one (their class heads are Linear, not Conv1d).
_RECOGNISING_KEYS = SIGNATURE_KEYS + ("weightedpool.weight", "class_embed.layers.0.weight")


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _whole_number(value) -> int:
    """int(value), refusing a fractional one (8.5 heads) rather than rounding it."""
    number = int(value)
    if number != value and not isinstance(value, str):
        raise ValueError(value)
    return number


def config_from_checkpoint(contents: CheckpointContents) -> UniVTGConfig:
    """The architecture from the checkpoint's options (or opt.json), with dimensions read from the shapes.

    Every option is validated: a bad one is a CheckpointError naming it.
    """
    state, name = contents.state_dict, contents.path.name
    missing = [k for k in SIGNATURE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{name} is not a UniVTG checkpoint: missing {', '.join(missing)}")
    ctx_mode = contents.option("ctx_mode", "video_tef", str)
    use_tef = "tef" in ctx_mode
    video_input_dim = int(state["input_vid_proj.0.LayerNorm.weight"].shape[0])
    saved_dim = contents.option("v_feat_dim", None, _whole_number, lambda v: v >= 0, "a width")
    if saved_dim is not None and contents.options_source == "opt.json" and use_tef:
        saved_dim += TEF_COLUMNS  # opt.json is written before the official parser adds the tef columns
    if saved_dim is not None and saved_dim != video_input_dim:
        logger.warning("%s: its options say v_feat_dim=%s but the weights read %d columns; using the weights", name,
                       saved_dim, video_input_dim)
    max_q_l, hidden = state["txt_position_embed.position_embeddings.weight"].shape
    arguments = dict(
        video_dim=video_input_dim - (TEF_COLUMNS if use_tef else 0),
        text_dim=int(state["input_txt_proj.0.LayerNorm.weight"].shape[0]),
        hidden_dim=int(hidden),
        enc_layers=_count(state, r"transformer\.encoder\.layers\.(\d+)\."),
        n_input_proj=_count(state, r"input_vid_proj\.(\d+)\."),
        max_q_l=int(max_q_l),
        pre_norm="transformer.encoder.norm.weight" in state,
        use_tef=use_tef,
        nheads=contents.option("nheads", 8, _whole_number, lambda v: v > 0, "a positive number of heads"),
        input_dropout=contents.option("input_dropout", 0.5, float),
        dropout=contents.option("dropout", 0.0, float),
        droppath=contents.option("droppath", 0.1, float),
        max_v_l=contents.option("max_v_l", 75, _whole_number, lambda v: v > 0, "a positive number of clips"),
        span_loss_type=contents.option("span_loss_type", "l1", str, lambda v: v == "l1", "only 'l1' exists"),
        use_txt_pos=contents.option("use_txt_pos", False, as_bool),
        clip_length=contents.option("clip_length", 2.0, float, lambda v: math.isfinite(v) and v > 0,
                                     "a positive number of seconds"),
        normalize_video=not contents.option("no_norm_vfeat", False, as_bool),
        normalize_text=not contents.option("no_norm_tfeat", False, as_bool),
        video_types=contents.option("v_feat_types", None, str),
    )
    if "transformer.encoder.layers.0.linear1.weight" in state:
        arguments["dim_feedforward"] = int(state["transformer.encoder.layers.0.linear1.weight"].shape[0])
    try:
        return UniVTGConfig(**arguments)
    except ValueError as exc:
        raise CheckpointError(f"{name}: its options and weights give a UniVTG that cannot be built: {exc}") from exc


ARCHITECTURE = register(Architecture(
    name="univtg",
    summary="UniVTG (ICCV'23): per-clip foreground, boundaries and saliency; CLIP text tokens",
    module=UniVTG,
    config_from_checkpoint=config_from_checkpoint,
    model_ids=("univtg",),
    signature_keys=_RECOGNISING_KEYS,
    safe_globals=(argparse.Namespace,),
    features="video: CLIP image embeddings per clip (optionally SlowFast before them), tef appended by the model; "
             "text: CLIP per-token ln_final rows",
    training="univtg_core.training.recipes.univtg:RECIPE",
    checkpoints="UniVTG's released CLIP checkpoints (omni/demo, QVHighlights, Charades-STA, ...); those trained "
                "on SlowFast + CLIP need SlowFast features",
))
