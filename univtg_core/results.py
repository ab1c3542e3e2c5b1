"""Results as small frozen dataclasses that serialise to the QVHighlights prediction format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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
class Prediction:
    """Everything one query gives: moments (best first), the saliency curve, highlight and summary points."""

    moments: tuple[Moment, ...]
    saliency: np.ndarray = field(repr=False)
    clip_len: float
    duration: float
    highlight: float
    summary: tuple[float, ...]
    query: str | None = None
    mode: str = "model"

    @property
    def top(self) -> Moment | None:
        return self.moments[0] if self.moments else None

    def to_json(self) -> dict:
        """QVHighlights keys (`pred_relevant_windows`, `pred_saliency_scores`) plus our extras."""
        return {
            "query": self.query,
            "pred_relevant_windows": [m.to_list() for m in self.moments],
            "pred_saliency_scores": [round(float(s), 4) for s in np.asarray(self.saliency).tolist()],
            "duration": round(float(self.duration), 4),
            "clip_len": float(self.clip_len),
            "pred_highlight": round(float(self.highlight), 4),
            "pred_summary": [round(float(s), 4) for s in self.summary],
            "mode": self.mode,
        }

    def to_json_line(self) -> str:
        return json.dumps(self.to_json())
