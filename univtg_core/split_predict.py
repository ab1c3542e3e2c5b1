"""Predictions for a whole split from precomputed features: what `python -m univtg_core predict-split` runs.

The official protocols (QVHighlights, Charades-STA, TACoS, MAD, Ego4D-NLQ) score prediction files made from
the datasets' own feature files: video features per vid (a folder of `<vid>.npz`, an `.h5` keyed by vid, or a
feature store), query token features per qid (`last_hidden_state`) and, for zero-shot and the coarse first
stage, a sentence embedding per qid (`pooler_output`, or another field or file). Each query goes through
`ground()` with the options of a long-video query (windows, coarse-to-fine, guidance records), so the files
`python -m univtg_core.evaluation --metrics ...` scores are what the product answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import QueryError
from .inference import ground
from .query import Query
from .results import Prediction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitOptions:
    """How each query is answered (ground()'s options) and what is read for it."""

    clip_len: float
    text_field: str = "last_hidden_state"
    sentence_field: str | None = "pooler_output"
    window: int | None = None
    stride: int | None = None
    coarse_top_k: int | str | None = None  # ground()'s: None / "all", "auto" or K
    fusion: str = "sum"
    nms_threshold: float = 0.7
    top_k: int = 10
    summary_budget: float = 0.15


def predict_split(records: Sequence[dict], videos, texts, options: SplitOptions, model=None,
                  sentences=None, guidance: dict | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[Prediction]:
    """One Prediction (with qid and vid) per record, in order.

    videos / texts / sentences: readers with `video(vid)` and `query(qid, field=...)` (the trainer's
    `training.data.FeatureStore`, built without normalisation: ground() and the models normalise as they
    were trained). `sentences` defaults to `texts`. guidance: {qid: GuidanceRecord} (`read_guidance`).
    """
    sentences = sentences if sentences is not None else texts
    total = len(records)
    for done, record in enumerate(records, 1):
        qid, vid = record["qid"], str(record["vid"])
        feats = videos.video(vid)
        tokens = texts.query(qid, field=options.text_field) if model is not None else None
        embedding = _sentence(sentences, qid, options.sentence_field)
        if tokens is None and embedding is None:
            raise QueryError(f"qid {qid!r}: zero-shot needs the sentence embedding ({options.sentence_field!r} in "
                             f"the text features); pass --sentence-field / --sentence-features, or --resume")
        query = Query(tokens, embedding=embedding, text=record.get("query"))
        duration = record.get("duration")
        pred = ground(feats, query, options.clip_len, model=model, window=options.window, stride=options.stride,
                      coarse_top_k=options.coarse_top_k, guidance=(guidance or {}).get(str(qid)),
                      fusion=options.fusion, duration=float(duration) if duration is not None else None,
                      label=record.get("query"), nms_threshold=options.nms_threshold, top_k=options.top_k,
                      summary_budget=options.summary_budget)
        if progress is not None:
            progress(done, total)
        yield replace(pred, qid=qid, vid=vid)


def _sentence(store, qid, field: str | None) -> np.ndarray | None:
    if not field:
        return None
    from .training.data import DataError

    try:
        return np.asarray(store.query(qid, field=field), dtype=np.float32).reshape(-1)
    except DataError as exc:  # features without that field: no embedding (ground() says when one is needed)
        logger.debug("no sentence embedding for qid %r (%s)", qid, exc)
        return None
