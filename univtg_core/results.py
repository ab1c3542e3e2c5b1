"""Results as small frozen dataclasses that serialise to the QVHighlights prediction format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Moment:
    """One predicted interval, in seconds."""

    start: float
    end: float
    score: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def to_list(self, digits: int = 4) -> list[float]:
        return [round(float(self.start), digits), round(float(self.end), digits), round(float(self.score), digits)]


@dataclass(frozen=True)
class WindowSearch:
    """Which windows of a long video were read: `searched` of `total`, how they were picked and why that many.

    asked: the choice as given ("auto", "all" or the K asked, as text); first_stage: what ranked the windows
    ("cosine", "guidance", "model": the architecture's own retrieval; None when every window was read
    unranked); rule: why this many, in words (e.g. "auto: 97 windows, more than 16").
    """

    searched: int
    total: int
    asked: str
    rule: str
    first_stage: str | None = None

    def describe(self) -> str:
        """e.g. "searched the 8 best of 97 windows", "searched all 8 windows", "searched the one window"."""
        if self.total == 1:
            return "searched the one window"
        if self.searched >= self.total:
            return f"searched all {self.total} windows"
        return f"searched the {self.searched} best of {self.total} windows"

    def to_dict(self) -> dict:
        return {"searched": int(self.searched), "total": int(self.total), "asked": self.asked, "rule": self.rule,
                "first_stage": self.first_stage}


@dataclass(frozen=True, eq=False)
class Prediction:
    """Everything one query gives: moments (best first), the saliency curve, highlight and summary points.

    `qid` and `vid` identify the query and the video where a dataset names them (training-time evaluation);
    they are written first when set, as QVHighlights prediction files have them.
    """

    moments: tuple[Moment, ...]
    saliency: np.ndarray = field(repr=False)
    clip_len: float
    duration: float
    highlight: float
    summary: tuple[float, ...]
    query: str | None = None
    mode: str = "model"
    qid: Any = None
    vid: str | None = None
    # What the query's reader read: token rows the model read (text rows after its cut, plus image rows), or in
    # zero-shot the text tokens CLIP's embedding read; how many tokens the text has; whether any were dropped.
    tokens_read: int | None = None
    query_tokens: int | None = None
    query_cut: bool = False
    # The windows of a long video that were read (coarse-to-fine, or all of them); None when none were laid
    # (zero-shot over every clip).
    window_search: WindowSearch | None = None

    @property
    def top(self) -> Moment | None:
        return self.moments[0] if self.moments else None

    def __eq__(self, other: object) -> bool:
        """Field by field, the saliency curve by value (a dataclass `==` would ask an array for its truth)."""
        if not isinstance(other, Prediction):
            return NotImplemented
        return all(
            np.array_equal(np.asarray(getattr(self, f.name)), np.asarray(getattr(other, f.name)))
            if f.name == "saliency" else getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )

    __hash__ = None  # holds an array: not hashable

    def to_dict(self) -> dict:
        """The QVHighlights prediction record (`pred_relevant_windows`, `pred_saliency_scores`) plus our extras;
        JSON-ready."""
        record: dict[str, Any] = {}
        if self.qid is not None:
            record["qid"] = self.qid
        record["query"] = self.query
        if self.vid is not None:
            record["vid"] = self.vid
        record.update({
            "pred_relevant_windows": [m.to_list() for m in self.moments],
            "pred_saliency_scores": [round(float(s), 4) for s in np.asarray(self.saliency).tolist()],
            "duration": round(float(self.duration), 4),
            "clip_len": float(self.clip_len),
            "pred_highlight": round(float(self.highlight), 4),
            "pred_summary": [round(float(s), 4) for s in self.summary],
            "mode": self.mode,
        })
        if self.tokens_read is not None:
            record["tokens_read"] = int(self.tokens_read)
            if self.query_tokens is not None:
                record["query_tokens"] = int(self.query_tokens)
            record["query_cut"] = bool(self.query_cut)
        if self.window_search is not None:
            record["window_search"] = self.window_search.to_dict()
        return record

    def to_json_line(self) -> str:
        return json.dumps(self.to_dict())
