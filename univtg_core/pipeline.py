"""The front ends' entry point: the encoders a model reads (+ a grounding model); index videos, answer queries."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from .indexing import ProgressCallback, VideoIndex
from .inference import ground
from .models._contract import FeatureSet, FeatureSource
from .query import Query
from .results import Prediction
from .sources import (
    ProgressFor,
    check_computable,
    check_slowfast_weights,
    check_widths,
    index_sources,
    missing_slowfast_weights,
    needs_slowfast,
    source_names,
)

logger = logging.getLogger(__name__)


class Grounder:
    """Index a video once, then ask it many questions in words, with an image, or both."""

    def __init__(self, encoder, model=None, clip_len: float | None = None, cache_dir: str | Path | None = None,
                 use_cache: bool = True, nms_threshold: float = 0.7, top_k: int = 10,
                 summary_budget: float = 0.15, max_duration: float | None = None,
                 video_encoders: dict[str, Any] | None = None):
        """`encoder`: CLIP (queries, and the `clip` video source). `video_encoders`: more video sources by name
        (e.g. {"slowfast": load_slowfast_encoder(...)}); the model's `input_spec.video` says which of them
        are indexed and in which order. A source the spec reads and no encoder gives is refused here."""
        self.encoder = encoder
        self.model = model
        self.video_encoders = {"clip": encoder, **(video_encoders or {})}
        spec = model.input_spec if model is not None else None
        self.sources = source_names(spec)
        if spec is not None:
            check_computable(spec)
            if needs_slowfast(spec) and "slowfast" not in self.video_encoders:
                raise missing_slowfast_weights(spec)
            check_widths(spec, self.video_encoders)
        model_clip_len = float(spec.clip_len) if spec is not None else None
        if clip_len is not None and model_clip_len is not None and abs(clip_len - model_clip_len) > 1e-6:
            logger.warning("the checkpoint was trained on %.2f s clips; using %.2f s as asked", model_clip_len,
                           clip_len)
        self.clip_len = float(clip_len or model_clip_len or 2.0)
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.summary_budget = summary_budget
        self.max_duration = max_duration

    @classmethod
    def from_options(cls, clip_weights: str = "openai", resume: str | Path | None = None, device=None,
                     clip_model: str = "ViT-B-32", precision: str = "auto", seed: int = 0,
                     slowfast_weights: str | Path | None = None, **kwargs) -> Grounder:
        """Load the checkpoint if `resume` is given (any registered architecture), then the encoders of the
        video sources its input spec reads (CLIP always: it encodes the queries; SlowFast from
        `slowfast_weights` when the spec reads it). A source we cannot compute, missing SlowFast weights or
        a width that does not fit is refused with one line before the encoders load where it can be."""
        from .encoders import load_clip_encoder
        from .models import load_model

        model = None
        if resume:
            model = load_model(resume, device=device)
            name = Path(resume).name
            spec = model.input_spec
            check_computable(spec, f"{name} ({model.architecture})")
            if needs_slowfast(spec) and not slowfast_weights:
                raise missing_slowfast_weights(spec, name)
            if needs_slowfast(spec):
                check_slowfast_weights(slowfast_weights)
        encoder = load_clip_encoder(clip_model, weights=clip_weights, device=device, precision=precision,
                                    seed=seed)
        extra = {}
        if model is not None:
            spec = model.input_spec
            if needs_slowfast(spec):
                from .slowfast import load_slowfast_encoder

                extra["slowfast"] = load_slowfast_encoder(slowfast_weights, device=encoder.device,
                                                          precision=precision, seed=seed)
            check_widths(spec, {"clip": encoder, **extra}, Path(resume).name, text_dim=encoder.token_dim)
            model.to(encoder.device)
        return cls(encoder, model, video_encoders=extra, **kwargs)

    @property
    def mode(self) -> str:
        return "zero-shot" if self.model is None else "model"

    def index(self, video_path: str | Path, progress: ProgressCallback | None = None, *,
              progress_for: ProgressFor | None = None) -> VideoIndex:
        """The video's clip features, every source the model reads (`sources`) from the feature store or
        streamed into it (an interrupted index resumes), concatenated in the model's order.
        `progress(done, total)` in clips, called for each source in turn; `progress_for(source)` gives each
        source a callback of its own instead (see `TimeLeft` for an estimate of the time left)."""
        encoders = [(name, self.video_encoders[name]) for name in self.sources]
        return index_sources(video_path, encoders, clip_len=self.clip_len, progress=progress,
                             progress_for=progress_for, cache_dir=self.cache_dir, use_cache=self.use_cache,
                             max_duration=self.max_duration)

    @property
    def text_token_limit(self) -> int | None:
        """The most text tokens the model reads (its official extractor's cut); None in zero-shot (CLIP's 77)."""
        return getattr(self.model, "text_token_limit", None) if self.model is not None else None

    def encode_query(self, text: str | None = None, image=None) -> Query:
        """The query as the models read it: text tokens encoded as the model's official extractor cut them
        (`text_token_limit`), then the image's token; the embedding is the mean of the parts' unit
        joint-space embeddings (what zero-shot and the first stage compare the clips with)."""
        rewrite = getattr(self.model, "query_text", None)  # the model's official text form (GroundingModel)
        said = rewrite(text) if rewrite is not None and text else text
        query = self.encoder.encode_query(said, image, token_limit=self.text_token_limit)
        if said != text and query.text is not None:  # the model's canonical form was encoded; the label stays
            query = replace(query, text=text.strip())
        return query

    def query(self, index: VideoIndex, text: str | None = None, image=None, *, window: int | None = None,
              stride: int | None = None, coarse_top_k: int | str | None = "auto", guidance=None,
              fusion: str = "sum") -> Prediction:
        """One query on an indexed video, at any length; the options are `ground()`'s (coarse-to-fine with
        `coarse_top_k`, guidance score records, the fusion rule). A front end's default is "auto": a long
        video's model reads only the best windows (`long_video.choose_top_k`); "all" reads every one."""
        asked = self.encode_query(text, image)
        return ground(index.features, asked, clip_len=index.clip_len, model=self.model, window=window,
                      stride=stride, coarse_top_k=coarse_top_k, guidance=guidance, fusion=fusion,
                      duration=index.duration, label=asked.text or asked.label, nms_threshold=self.nms_threshold,
                      top_k=self.top_k, summary_budget=self.summary_budget)


def computable_features(encoder) -> FeatureSet:
    """The feature sources this front end computes with `encoder`: CLIP image embeddings per clip and CLIP
    per-token text rows, at the encoder's widths. A checkpoint needing anything else is refused at start-up
    (`load_model(features=...)`)."""
    return FeatureSet(video=(FeatureSource("clip", int(encoder.embed_dim)),),
                      text=(FeatureSource("clip_tokens", int(encoder.token_dim)),))


def results_are_meaningful(grounder: Grounder) -> bool:
    """False when CLIP (or another encoder the model reads, e.g. SlowFast) runs on random weights (tests,
    offline smoke runs): a front end must then say that its results mean nothing. Front ends ask this rather
    than look inside the encoders."""
    encoders = [grounder.encoder, *getattr(grounder, "video_encoders", {}).values()]
    return not any(bool(getattr(enc, "is_random", False)) for enc in encoders)
