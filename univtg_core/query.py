"""A query as every model and the zero-shot path read it: per-token features plus the sentence embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Query:
    """What to look for, encoded (`ClipEncoder.encode_query` makes one from a text and/or an image).

    tokens: (T, D) per-token features for the models. From our CLIP encoder a text query's rows are CLIP's
        tokens as the tokenizer made them (start token, BPE tokens, end token; cut at the model's
        `text_token_limit` when the encoder was asked to), then one row per example image. From a dataset
        they are whatever its feature files hold. None for an embedding-only query (zero-shot only).
    embedding: (E,) the whole query in the joint space of the video features (CLIP's for CLIP video): what
        zero-shot and the coarse first stage compare clips with. Always from CLIP's full context (77
        tokens), whatever cut the tokens had. None when unknown (dataset tokens only).
    text_rows: how many leading rows of `tokens` are encoder-made text rows (start .. end). None means the
        tokens came from a dataset and are taken as they are.
    text_tokens: how many tokens the text has before any cut (start + every BPE token + end); more than
        `text_rows` when the encoder cut it for a model. None when unknown.
    embedding_tokens: how many text tokens the embedding was made from (at most CLIP's context length).
    """

    tokens: np.ndarray | None = None
    embedding: np.ndarray | None = None
    text: str | None = None
    label: str | None = None
    text_rows: int | None = None
    text_tokens: int | None = None
    embedding_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.tokens is None and self.embedding is None:
            raise ValueError("a Query needs token rows, an embedding, or both")
        if self.tokens is not None:
            tokens = np.asarray(self.tokens, dtype=np.float32)
            if tokens.ndim == 1:
                tokens = tokens[None]
            object.__setattr__(self, "tokens", tokens)
        if self.embedding is not None:
            object.__setattr__(self, "embedding", np.asarray(self.embedding, dtype=np.float32).reshape(-1))

    @property
    def text_cut(self) -> bool:
        """Whether the encoder dropped text tokens to fit a model's limit."""
        return self.text_tokens is not None and self.text_rows is not None and self.text_tokens > self.text_rows
