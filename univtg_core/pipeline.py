"""The front ends' entry point: one encoder (+ optional grounding model) that indexes videos and answers queries."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .indexing import ProgressCallback, VideoIndex, index_video
from .inference import ground
from .query import Query
from .results import Prediction

logger = logging.getLogger(__name__)


class Grounder:
    """Index a video once, then ask it many questions in words, with an image, or both."""

    def __init__(self, encoder, model=None, clip_len: float | None = None, cache_dir: str | Path | None = None,
                 use_cache: bool = True, nms_threshold: float = 0.7, top_k: int = 10,
                 summary_budget: float = 0.15, max_duration: float | None = None):
        self.encoder = encoder
        self.model = model
        model_clip_len = float(model.input_spec.clip_len) if model is not None else None
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
                     clip_model: str = "ViT-B-32", precision: str = "auto", seed: int = 0, **kwargs) -> Grounder:
        """Load CLIP (and the checkpoint if `resume` is given, of any registered architecture), checking that
        their widths fit."""
        from .encoders import load_clip_encoder
        from .models import load_model

        encoder = load_clip_encoder(clip_model, weights=clip_weights, device=device, precision=precision,
                                    seed=seed)
        model = None
        if resume:
            model = load_model(resume, device=encoder.device, video_dim=encoder.embed_dim,
                               text_dim=encoder.token_dim)
        return cls(encoder, model, **kwargs)

    @property
    def mode(self) -> str:
        return "zero-shot" if self.model is None else "model"

    def index(self, video_path: str | Path, progress: ProgressCallback | None = None) -> VideoIndex:
        """The video's clip features, from the feature store or streamed into it (an interrupted index
        resumes); `progress(done, total)` in clips (see `TimeLeft` for an estimate of the time left)."""
        return index_video(video_path, self.encoder, clip_len=self.clip_len, cache_dir=self.cache_dir,
                           use_cache=self.use_cache, progress=progress, max_duration=self.max_duration)

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
              stride: int | None = None, coarse_top_k: int | None = None, guidance=None,
              fusion: str = "sum") -> Prediction:
        """One query on an indexed video, at any length; the options are `ground()`'s (coarse-to-fine with
        `coarse_top_k`, guidance score records, the fusion rule)."""
        asked = self.encode_query(text, image)
        return ground(index.features, asked, clip_len=index.clip_len, model=self.model, window=window,
                      stride=stride, coarse_top_k=coarse_top_k, guidance=guidance, fusion=fusion,
                      duration=index.duration, label=asked.text or asked.label, nms_threshold=self.nms_threshold,
                      top_k=self.top_k, summary_budget=self.summary_budget)


def results_are_meaningful(grounder: Grounder) -> bool:
    """False when CLIP runs on random weights (tests, offline smoke runs): a front end must then say that
    its results mean nothing. Front ends ask this rather than look inside the encoder."""
    return not bool(getattr(grounder.encoder, "is_random", False))
