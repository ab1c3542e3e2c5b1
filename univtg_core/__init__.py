"""univtg_core: UniVTG-compatible video temporal grounding (moments, saliency curve, summary points).

Importing the package pulls in neither training, datasets, nor the UI; heavy pieces load on first use.
"""

from .errors import (
    CheckpointError,
    EncoderWeightsError,
    OptionError,
    QueryError,
    StillImageError,
    StoreError,
    StoreFullError,
    UniVTGError,
    UnknownModelError,
    VideoReadError,
    VideoTooLongError,
    VideoTooShortError,
)
from .query import Query
from .results import Moment, Prediction, WindowSearch

__all__ = [
    "CheckpointError",
    "CurveView",
    "EncoderWeightsError",
    "FeatureStore",
    "Grounder",
    "Moment",
    "OptionError",
    "Prediction",
    "Query",
    "QueryError",
    "StillImageError",
    "StoreError",
    "StoreFullError",
    "TimeLeft",
    "UniVTGError",
    "UnknownModelError",
    "VideoIndex",
    "VideoReadError",
    "VideoTooLongError",
    "VideoTooShortError",
    "WindowSearch",
    "curve_view",
    "browser_playable",
    "cut_clip",
    "format_bytes",
    "format_length",
    "format_score",
    "format_span",
    "format_time",
    "ground",
    "index_video",
    "list_models",
    "load_clip_encoder",
    "load_model",
    "make_playable_copy",
    "parse_coarse_top_k",
    "probe_playback",
    "read_guidance",
    "read_frames_at",
    "results_are_meaningful",
    "summary_spans",
    "write_summary_video",
    "load_slowfast_encoder",
    "zoom_range",
]

__version__ = "0.1.0"


_LAZY = {
    "Grounder": "pipeline",
    "results_are_meaningful": "pipeline",
    "VideoIndex": "indexing",
    "index_video": "indexing",
    "load_clip_encoder": "encoders",
    "load_model": "models",
    "list_models": "models",
    "load_slowfast_encoder": "slowfast",
    "ground": "inference",
    "read_guidance": "guidance",
    "parse_coarse_top_k": "long_video",  # front ends check the auto / all / K choice before a long index
    # what a front end shows besides the prediction: thumbnails, clips, the summary video, times
    "read_frames_at": "video",
    "cut_clip": "media",
    "write_summary_video": "media",
    "format_time": "formatting",
    "format_score": "formatting",
    "format_bytes": "formatting",
    "format_length": "formatting",
    "format_span": "formatting",
    # long videos: the feature store, the curve sized for a screen, a zoomed range, the time an index has left
    "FeatureStore": "store",
    "CurveView": "curves",
    "curve_view": "curves",
    "zoom_range": "curves",
    "TimeLeft": "curves",
    # a front end's player: whether a file plays in a browser, a playable copy, the summary's spans
    "probe_playback": "media",
    "browser_playable": "media",
    "make_playable_copy": "media",
    "summary_spans": "media",
}


def __getattr__(name: str):
    """torch, CLIP and video reading load on first use, so `python -m univtg_core.evaluation` starts fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'univtg_core' has no attribute {name!r}")
