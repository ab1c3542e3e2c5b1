"""A query as every model and the zero-shot path read it: per-token features plus the sentence embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Query:
    """What to look for, encoded.

    tokens: (T, D) per-token features. From our CLIP encoder a text query's rows are CLIP's tokens as
        the tokenizer made them (start token, BPE tokens, end token), then one row per example image.
        From a dataset they are whatever its feature files hold.
    embedding: (E,) the whole query in the joint space of the video features (CLIP's for CLIP video): what
        zero-shot and the coarse first stage compare clips with. None when unknown (dataset tokens only).
    text_rows: how many leading rows of `tokens` are encoder-made text rows (start .. end). Each
        architecture cuts these as its official extractor did (see the model registry); None means the
        tokens came from a dataset and are taken as they are.
    """

    tokens: np.ndarray
    embedding: np.ndarray | None = None
    text: str | None = None
    label: str | None = None
    text_rows: int | None = None

    def __post_init__(self) -> None:
        tokens = np.asarray(self.tokens, dtype=np.float32)
        if tokens.ndim == 1:
            tokens = tokens[None]
        object.__setattr__(self, "tokens", tokens)
        if self.embedding is not None:
            object.__setattr__(self, "embedding", np.asarray(self.embedding, dtype=np.float32).reshape(-1))
