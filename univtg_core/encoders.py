"""CLIP encoders (open_clip) that produce exactly the features UniVTG's checkpoints were trained on.

- Video: one ``encode_image`` embedding per clip frame, not normalised (UniVTG's extractor saved them so).
- Text: the per-token outputs of the text transformer after ``ln_final``, without ``text_projection``, for
  the non-padding tokens including the start and end tokens (UniVTG's ``last_hidden_state``).

One loading path turns ``weights`` into a ready encoder, tried in this order:

1. ``"random"``: random initialisation under ``seed`` (for tests and offline smoke runs only).
2. an open_clip pretrained tag for ``model_name`` (``"openai"``, ...): downloaded by open_clip into its
   cache (its ``quick_gelu`` setting is used: OpenAI's weights need QuickGELU).
3. a local file: an open_clip state dict (``.pt``/``.bin`` read with ``torch.load(weights_only=True)``),
   a ``.safetensors`` file, or OpenAI's original TorchScript archive (``ViT-B-32.pt`` as released).
   Local files default to QuickGELU because UniVTG was trained on OpenAI CLIP features.

Nothing is imported from open_clip or downloaded until ``load_clip_encoder`` is called.
"""

from __future__ import annotations

import logging
import os
import socket
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import default_dtype, pick_device
from .errors import EncoderWeightsError, QueryError
from .hashing import file_sha256
from .query import Query
from .torchscript_weights import read_torchscript_state_dict
from .weights import read_weights, state_dict_of

logger = logging.getLogger(__name__)

_WEIGHTS_HELP = (
    "Pass a local file with --clip-weights PATH (OpenAI's ViT-B-32.pt, an open_clip .pt/.bin state dict or a "
    ".safetensors file), or use --clip-weights random for an offline smoke run (meaningless results)."
)
# Entries of OpenAI's TorchScript state dict that are not weights.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class QueryFeatures:
    """A query ready for the UniVTG model (``tokens``) and for zero-shot scoring (``sentence``)."""

    tokens: np.ndarray  # (T, token_dim) float32: the UniVTG model's text input
    sentence: np.ndarray  # (embed_dim,) float32: the embedding in CLIP's joint space
    kind: str  # "text" or "image"
    text: str | None = None
    n_tokens: int | None = None  # text tokens before any cut (start + every BPE token + end)
    sentence_tokens: int | None = None  # text tokens the sentence embedding read (at most the context length)


class ClipEncoder:
    """A CLIP model in eval mode with the preprocessing that travels with it (see ``load_clip_encoder``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        model_name: str,
        weights: str,
        device: torch.device,
        dtype: torch.dtype,
        fingerprint: str,
        is_random: bool,
        batch_size: int = 64,
    ):
        import open_clip

        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.fingerprint = fingerprint
        self.is_random = is_random
        self.batch_size = batch_size
        preprocess = open_clip.get_model_preprocess_cfg(model)
        size = preprocess["size"]
        if isinstance(size, (tuple, list)):
            if size[0] != size[1]:
                raise EncoderWeightsError(f"CLIP {model_name} has a non-square input {size}; use a square model")
            size = size[0]
        self.image_size = int(size)
        self.preprocess_cfg = dict(preprocess)
        self.embed_dim = int(model.visual.output_dim)
        self.token_dim = int(model.token_embedding.embedding_dim)
        self.context_length = int(model.context_length)
        self._mean = torch.tensor(preprocess["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._image_transform = open_clip.transform.image_transform_v2(
            open_clip.transform.PreprocessCfg(**preprocess), is_train=False
        )
        self._proj_inverse: tuple[torch.Tensor, torch.Tensor | None] | None = None  # built on first use

    def __repr__(self) -> str:
        return (f"ClipEncoder({self.model_name!r}, weights={self.weights!r}, device={self.device}, "
                f"dtype={self.dtype}, fingerprint={self.fingerprint!r})")

    # -- video ------------------------------------------------------------------------------------------
    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB ``(B, image_size, image_size, 3)`` -> ``(B, embed_dim)`` float32, not normalised.

        Frames come from ``video.iter_clip_frames(size=encoder.image_size)`` (already resized and cropped);
        this only scales to [0, 1] and normalises with the mean/std of the model's preprocess config.
        """
        frames = np.asarray(frames)
        s = self.image_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (s, s, 3):
            raise ValueError(
                f"encode_frames takes uint8 RGB frames of shape (B, {s}, {s}, 3); got {frames.dtype} "
                f"{frames.shape}. Read them with iter_clip_frames(size={s})."
            )
        out = np.empty((len(frames), self.embed_dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(frames[start:start + self.batch_size]))
                x = chunk.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                x = ((x - self._mean) / self._std).to(self.dtype)
                feats = self.model.encode_image(x)
                out[start:start + len(chunk)] = feats.float().cpu().numpy()
        return out

    def expected_clips(self, path: str | os.PathLike, clip_len: float = 2.0) -> int:
        """How many features `iter_video_features` gives for this video: round(duration / clip_len)."""
        from .video import clip_count, probe_video

        return clip_count(probe_video(path).duration, clip_len)

    def iter_video_features(
        self,
        path: str | os.PathLike,
        clip_len: float = 2.0,
        progress: Callable[[int, int], None] | None = None,
        *,
        start_clip: int = 0,
        batch_size: int = 32,
        prefetch: int = 2,
    ) -> Iterator[np.ndarray]:
        """``(b, embed_dim)`` float32 feature batches of the clips from ``start_clip`` on, in order.

        The stream every video encoder offers the indexer (SlowFast's has the same signature): frames come
        from the video package's clip grid (one frame per clip, decoded in a background thread a bounded
        number of batches ahead), so memory stays flat however long the video is; a resumed index starts at
        ``start_clip`` and decodes nothing before it. ``progress(done, total)`` counts clips of the whole
        video (``done`` starts at ``start_clip``).
        """
        from .errors import VideoReadError
        from .video import clip_times, iter_clip_frames, probe_video

        info = probe_video(path)
        seconds = clip_times(info.duration, clip_len)
        total = len(seconds)
        if not 0 <= start_clip <= total:
            raise ValueError(f"start_clip must be within [0, {total}]; got {start_clip}")
        done = start_clip
        if progress is not None:
            progress(done, total)
        if start_clip == total:
            return
        logger.info("%s: clips %d..%d of %d (%.2f s each)", Path(path).name, start_clip, total - 1, total, clip_len)
        for frames in iter_clip_frames(info.path, clip_len, self.image_size, batch_size, backend=info.backend,
                                       prefetch=max(1, int(prefetch)), start_clip=start_clip):
            feats = self.encode_frames(frames)
            done += len(feats)
            if progress is not None:
                progress(done, total)
            yield feats
        if done != total:
            raise VideoReadError(f"{Path(path).name}: decoded {done} of {total} clips; the file may be truncated")

    def encode_video(self, path: str | os.PathLike, clip_len: float = 2.0,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """``(N, embed_dim)`` float32 features of every clip, in memory (the indexer streams them to the store)."""
        parts = list(self.iter_video_features(path, clip_len, progress))
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self.embed_dim), np.float32)

    # -- queries ----------------------------------------------------------------------------------------
    def encode_text(self, text: str, token_limit: int | None = None) -> QueryFeatures:
        """Per-token features for the models and the sentence embedding.

        ``tokens`` are the ``ln_final`` outputs (no ``text_projection``) of the non-padding positions, the
        arithmetic of UniVTG's extractor (start token, words, end token). With ``token_limit`` N, a text of
        more than N tokens is encoded as its official extractor cut it: start + the first N - 2 BPE tokens +
        end, run as its own sequence (CLIP's attention is causal, so that end row differs from the full
        sentence's row at the same place). ``sentence`` is always the end-token row of CLIP's whole context
        (77 tokens) through ``text_projection``: the same as open_clip's ``model.encode_text``.
        """
        if not isinstance(text, str) or not text.strip():
            raise QueryError(f"the text query is empty (got {text!r}); type a sentence describing the moment")
        if token_limit is not None and token_limit < 2:
            raise ValueError(f"token_limit must leave room for the start and end tokens (>= 2); got {token_limit}")
        encode = getattr(self.tokenizer, "encode", None)
        n_tokens = len(encode(text)) + 2 if encode is not None else None
        if n_tokens is not None and n_tokens > self.context_length:
            logger.warning("query has %d tokens; CLIP reads at most %d, the rest is dropped: %r",
                           n_tokens, self.context_length, text)
        ids = self.tokenizer([text]).to(self.device)
        end = int(ids[0].argmax())  # the end token has the largest id
        ids = ids[:, : end + 1]
        rows = self._text_rows(ids)
        with torch.inference_mode():
            sentence = self._project(rows[end])
        tokens = rows[: int((ids[0] != 0).sum())]
        if token_limit is not None and len(tokens) > token_limit:
            cut = torch.cat([ids[:, : token_limit - 1], ids[:, end : end + 1]], dim=1)
            tokens = self._text_rows(cut)
        return QueryFeatures(tokens.float().cpu().numpy(), sentence.float().cpu().numpy(), "text", text,
                             n_tokens=n_tokens if n_tokens is not None else end + 1,
                             sentence_tokens=end + 1)

    def _text_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``ln_final`` rows of one id sequence that ends with its end token, (T, token_dim).

        The attention is causal, so the rows up to the end token do not depend on the padding after it:
        running only those rows gives the same features for a fraction of the work (a 10-word query costs
        ~1/6 of the 77-token pass, which dominates query latency on CPU).
        """
        m = self.model
        n = ids.shape[1]
        with torch.inference_mode():
            cast = m.transformer.get_cast_dtype()
            x = m.token_embedding(ids).to(cast) + m.positional_embedding[:n].to(cast)
            mask = m.attn_mask[:n, :n] if m.attn_mask is not None else None
            if getattr(m.transformer, "batch_first", True):
                x = m.transformer(x, attn_mask=mask)
            else:  # open_clip before 2.26 ran the transformer sequence-first
                x = m.transformer(x.permute(1, 0, 2), attn_mask=mask).permute(1, 0, 2)
            return m.ln_final(x)[0]

    def encode_query(self, text: str | None = None, image: Any = None, token_limit: int | None = None) -> Query:
        """The query as the models and zero-shot read it, from a text, an example image, or both.

        tokens: the text's rows (cut at ``token_limit``, a model's ``text_token_limit``, as its official
        extractor cut them), then the image's row; embedding: the mean of the parts' unit joint-space
        embeddings (the text's from CLIP's full context), what zero-shot and the coarse first stage use.
        """
        text = text.strip() if isinstance(text, str) else None
        parts = []
        if text:
            parts.append(self.encode_text(text, token_limit=token_limit))
        if image is not None:
            parts.append(self.encode_image(image))
        if not parts:
            raise QueryError("the query is empty: type what to look for, or give an example image")
        tokens = np.concatenate([p.tokens for p in parts], axis=0)
        unit = [p.sentence / (np.linalg.norm(p.sentence) + 1e-8) for p in parts]
        embedding = np.mean(unit, axis=0)
        label = " + ".join([f'"{text}"'] * bool(text) + ["[image]"] * (image is not None))
        written = parts[0] if text else None
        return Query(tokens, embedding=np.asarray(embedding, np.float32), text=text or None, label=label,
                     text_rows=len(written.tokens) if written else 0,
                     text_tokens=written.n_tokens if written else None,
                     embedding_tokens=written.sentence_tokens if written else None)

    def _project(self, row: torch.Tensor) -> torch.Tensor:
        proj = self.model.text_projection
        return proj(row) if isinstance(proj, torch.nn.Linear) else row @ proj

    def encode_image(self, image: Any) -> QueryFeatures:
        """An image as a query: a PIL image, an ``(H, W, 3)`` uint8 RGB array, or a path.

        ``sentence`` is the image embedding (``encode_image`` of CLIP's own preprocessing of the image, not
        normalised). The UniVTG model only takes text-token features (the space before ``text_projection``),
        so ``tokens`` is one row mapped there by the pseudo-inverse of ``text_projection``: the minimum-norm
        token whose projection is the image embedding (``row @ text_projection ≈ sentence``). The model then
        sees the image as a one-token query that CLIP would place exactly where the image is in its joint
        space, which is the only link between image and text-token features that needs no training.
        """
        pil = _to_pil(image)
        x = self._image_transform(pil).unsqueeze(0).to(self.device, self.dtype)
        with torch.inference_mode():
            emb = self.model.encode_image(x)[0].double().cpu()
        pinv, bias = self._projection_inverse()
        row = ((emb if bias is None else emb - bias) @ pinv).unsqueeze(0)
        return QueryFeatures(row.float().numpy(), emb.float().numpy(), "image", None)

    def _projection_inverse(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pseudo-inverse of ``text_projection`` (float64, CPU) and its bias if it is a Linear layer."""
        if self._proj_inverse is None:
            proj = self.model.text_projection
            if isinstance(proj, torch.nn.Linear):
                weight, bias = proj.weight.detach().T, proj.bias
            else:
                weight, bias = proj.detach(), None
            weight = weight.double().cpu()
            eye = torch.eye(weight.shape[1], dtype=torch.float64)
            # lstsq (QR with pivoting) gives the same minimum-norm solution as linalg.pinv's SVD, ~20x faster
            pinv = torch.linalg.lstsq(weight.T, eye).solution.T
            self._proj_inverse = (pinv, None if bias is None else bias.detach().double().cpu())
        return self._proj_inverse


def _to_pil(image: Any):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
            raise QueryError(
                f"an image query array must be uint8 (H, W, 3) RGB; got {image.dtype} {image.shape}"
            )
        return Image.fromarray(image[..., :3]).convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        p = Path(image).expanduser()
        if not p.is_file():
            raise QueryError(f"image query file not found: {str(p)!r}")
        try:
            with Image.open(p) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise QueryError(f"cannot read {str(p)!r} as an image ({exc}); pass a JPEG or PNG file") from exc
    raise QueryError(f"an image query must be a PIL image, a uint8 RGB array or a path; got {type(image)!r}")


# ------------------------------------------------------------------------------------------------------
# Loading


def load_clip_encoder(
    model_name: str = "ViT-B-32",
    weights: str | os.PathLike = "openai",
    device: str | torch.device | None = None,
    precision: str = "auto",
    seed: int = 0,
    quick_gelu: bool | None = None,
) -> ClipEncoder:
    """Build a CLIP encoder from ``weights``: ``"random"``, an open_clip pretrained tag, or a local file.

    ``quick_gelu`` overrides the activation (default: the tag's setting; True for local files and random
    init). The device comes from ``pick_device`` and the dtype from ``default_dtype`` (half on CUDA).
    Raises EncoderWeightsError when weights cannot be downloaded, found, read or fitted to the model.
    """
    import open_clip

    name = model_name.replace("/", "-")
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if m.lower().startswith(name.lower()[:5])][:8]
        raise EncoderWeightsError(
            f"unknown CLIP model {model_name!r}; open_clip knows e.g. {', '.join(close) or 'ViT-B-32'}"
        )
    cfg = open_clip.get_model_config(name)
    if cfg.get("custom_text") or "multimodal_cfg" in cfg or "hf_model_name" in cfg.get("text_cfg", {}):
        raise EncoderWeightsError(
            f"CLIP {name} has a custom text tower; UniVTG needs a standard CLIP text transformer (e.g. ViT-B-32)"
        )
    dev = pick_device(device)
    dtype = default_dtype(dev, precision)
    source = str(weights)
    qg_default = bool(cfg.pop("quick_gelu", False))
    preprocess_overlay = cfg.pop("preprocess_cfg", {}) or {}

    tag_cfg = open_clip.get_pretrained_cfg(name, source) if source != "random" else {}
    state_dict = None
    if source == "random":
        qg = True if quick_gelu is None else quick_gelu
        origin = f"random-seed{seed}"
        logger.warning(
            "CLIP %s is randomly initialised (seed %d): features, moments and scores are meaningless. Use it "
            "for tests and smoke runs only.", name, seed
        )
    elif tag_cfg:
        qg = bool(tag_cfg.get("quick_gelu", qg_default)) if quick_gelu is None else quick_gelu
        origin = source
        path = _download(name, source, tag_cfg)
        state_dict = _read_state_dict(path)
        preprocess_overlay = {**preprocess_overlay, **tag_cfg}
    else:
        path = Path(source).expanduser()
        if not path.exists():
            known = ", ".join(open_clip.list_pretrained_tags_by_model(name)[:6])
            raise EncoderWeightsError(
                f"CLIP weights not found: {source!r} is neither an existing file nor a pretrained tag of {name} "
                f"(tags: {known}, ...). {_WEIGHTS_HELP}"
            )
        if not path.is_file():
            raise EncoderWeightsError(f"CLIP weights path {str(path)!r} is not a file. {_WEIGHTS_HELP}")
        qg = True if quick_gelu is None else quick_gelu
        state_dict = _read_state_dict(path)
        origin = "sha256-" + file_sha256(path)[:16]

    model = _build_model(open_clip, name, cfg, qg, dtype, seed)
    if state_dict is not None:
        _load_weights(model, state_dict, name, source)
    preprocess_cfg = open_clip.transform.merge_preprocess_dict(open_clip.transform.PreprocessCfg(),
                                                               preprocess_overlay)
    preprocess_cfg["size"] = model.visual.image_size
    open_clip.set_model_preprocess_cfg(model, preprocess_cfg)
    model.to(dev)
    if dtype in (torch.float16, torch.bfloat16):
        open_clip.convert_weights_to_lp(model, dtype=dtype)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    fingerprint = f"{name}{'+quickgelu' if qg else ''}:{origin}"
    logger.info("loaded CLIP %s (%s) on %s as %s", name, fingerprint, dev, dtype)
    return ClipEncoder(model, tokenizer, model_name=name, weights=source, device=dev, dtype=dtype,
                       fingerprint=fingerprint, is_random=source == "random")


def _build_model(open_clip: Any, name: str, cfg: dict, quick_gelu: bool, dtype: torch.dtype, seed: int):
    """Construct the CLIP on the CPU from a forked RNG: same seed, same weights, caller's RNG untouched."""
    cast = dtype if dtype in (torch.float16, torch.bfloat16) else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(**cfg, quick_gelu=quick_gelu, cast_dtype=cast)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connect; offline, its client retries for ~50 s."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def _hub_session(offline: bool):
    """Quiet huggingface_hub's per-retry warnings; when the hub is unreachable, only look in its local cache."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:
        hub_constants = None
    was_offline = getattr(hub_constants, "HF_HUB_OFFLINE", False)
    if offline and hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_logger.setLevel(level)
        if hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = was_offline


def _download(name: str, tag: str, tag_cfg: dict) -> Path:
    import open_clip.pretrained as pretrained

    offline = not _hub_reachable()
    try:
        with _hub_session(offline=offline):
            path = pretrained.download_pretrained(tag_cfg)
    except Exception as exc:  # no network, hub errors, interrupted transfer, ...
        if offline:
            reason = "the Hugging Face Hub cannot be reached and they are not in its local cache"
        else:
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no details"
            reason = f"{type(exc).__name__}: {detail}"
        raise EncoderWeightsError(f"could not download the {tag!r} CLIP weights for {name} ({reason}). "
                                  f"{_WEIGHTS_HELP}") from exc
    if not path or not Path(path).is_file():
        raise EncoderWeightsError(f"open_clip returned no file for the {tag!r} weights of {name}. {_WEIGHTS_HELP}")
    return Path(path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in zf.namelist())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: safetensors, a torch state dict, or an OpenAI TorchScript archive.

    Everything but TorchScript goes through the one weights reader (``univtg_core.weights``): nesting under
    ``state_dict`` is unwrapped and a ``module.`` prefix (DataParallel) is stripped.
    """
    try:
        if _is_torchscript(path):
            # OpenAI's released archives are TorchScript; only their tensors are kept
            obj: Any = read_torchscript_state_dict(path)  # read as data: torch.jit.load would run the file's code
            for key in _OPENAI_EXTRA_KEYS:
                obj.pop(key, None)
        else:
            obj = read_weights(path, error=EncoderWeightsError, what="CLIP weights")
    except EncoderWeightsError as exc:
        raise EncoderWeightsError(f"{exc}. {_WEIGHTS_HELP}") from exc
    except Exception as exc:
        raise EncoderWeightsError(
            f"cannot read CLIP weights from {str(path)!r} ({type(exc).__name__}: {_first_line(exc)}). "
            f"{_WEIGHTS_HELP}"
        ) from exc
    try:
        return dict(state_dict_of(dict(obj), error=EncoderWeightsError, what=f"file {str(path)!r}"))
    except EncoderWeightsError as exc:
        raise EncoderWeightsError(f"{exc}; it is not CLIP weights. {_WEIGHTS_HELP}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no details"


def _load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], name: str, source: str) -> None:
    state_dict = dict(state_dict)
    scale = state_dict.get("logit_scale")
    if scale is not None and scale.ndim != model.logit_scale.ndim:
        state_dict["logit_scale"] = scale.reshape(model.logit_scale.shape)
    expected = model.state_dict()
    for key in {n for n, _ in model.named_buffers()} - set(expected):  # non-persistent (attn_mask)
        state_dict.pop(key, None)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise EncoderWeightsError(
            f"the weights in {source!r} do not fit CLIP {name}: {'; '.join(parts)}. Pass the model name that "
            f"matches the file (e.g. model_name='ViT-B-16' for OpenAI's ViT-B-16.pt)."
        )
    model.load_state_dict(state_dict, strict=True)


__all__ = ["ClipEncoder", "QueryFeatures", "load_clip_encoder"]
