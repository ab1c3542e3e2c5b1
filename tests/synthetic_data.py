"""A planted-signal grounding dataset in UniVTG's layout, written by the tests (no downloads).

Video features are random (per-clip noise, optionally around a per-video background vector). Each query is
a few words drawn from a small shared vocabulary of concept vectors (real queries reuse words); its
sentence vector (the normalised sum of its words) is mixed into the query's ground-truth clips. With
`queries_per_video` > 1 several queries are planted at non-overlapping places, so a model must read the
query to pick the right one. Video and text features share one space (as CLIP's image and text
embeddings do), which language-free training relies on.

With `clip_like`, each query's rows are framed as CLIP's are: a start row and an end row (the same two
vectors for every query) around the word rows, and its text names the concept words (one CLIP BPE token
each), so that rows and CLIP tokens line up (MESM's masked-word labels need that).

Layout: <root>/{train,val}.jsonl (QVHighlights keys), <root>/vid_clip/<vid>.npz (`features`),
<root>/txt_clip/<qid>.npz (`last_hidden_state` per word token, `pooler_output` the sentence vector).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Words that CLIP's BPE keeps whole (one token each): the names of the concepts in `clip_like` queries.
CONCEPT_WORDS = ("dog", "car", "tree", "ball", "door", "chair", "phone", "book", "cup", "shoe", "bike", "fish",
                 "hat", "lamp", "box", "bed")


@dataclass(frozen=True)
class SyntheticDataset:
    root: Path
    train_path: Path
    val_path: Path
    video_dir: Path
    text_dir: Path
    dim: int
    clip_len: float


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _place_windows(rng: np.random.Generator, n_clips: int, count: int, min_len: int, max_len: int) -> list:
    """`count` non-overlapping [first, last] clip ranges with at least one clip between them."""
    for _ in range(1000):
        spans = []
        for _ in range(count):
            length = int(rng.integers(min_len, max_len + 1))
            first = int(rng.integers(0, n_clips - length + 1))
            spans.append((first, first + length - 1))
        spans.sort()
        if all(a[1] + 1 < b[0] for a, b in zip(spans, spans[1:])):
            return spans
    raise RuntimeError("could not place windows; use longer videos")


def write_planted_dataset(root: str | Path, n_train_videos: int = 280, n_val_videos: int = 40,
                          n_concepts: int = 16, words_per_query: int = 2, dim: int = 32,
                          clip_len: float = 2.0, clip_range: tuple[int, int] = (24, 40),
                          window_range: tuple[int, int] = (3, 10), queries_per_video: int = 1,
                          signal: float = 1.0, noise: float = 1.0, background: float = 0.0,
                          fresh_queries: bool = False, clip_like: bool = False, seed: int = 0) -> SyntheticDataset:
    """Write the dataset; `fresh_queries` makes every query a new random direction (nothing to share)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    video_dir, text_dir = root / "vid_clip", root / "txt_clip"
    video_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    concepts = _unit(rng.normal(size=(n_concepts, dim)))
    if clip_like:
        frame = _unit(rng.normal(size=(2, dim)))  # the start and end rows
        if n_concepts > len(CONCEPT_WORDS):
            raise ValueError(f"clip_like names at most {len(CONCEPT_WORDS)} concepts")
    qid = 0
    splits = {"train": n_train_videos, "val": n_val_videos}
    for split, n_videos in splits.items():
        lines = []
        for v in range(n_videos):
            vid = f"{split}_{v:04d}"
            n_clips = int(rng.integers(clip_range[0], clip_range[1] + 1))
            feats = background * _unit(rng.normal(size=dim)) + rng.normal(scale=noise / np.sqrt(dim),
                                                                          size=(n_clips, dim))
            words_used: set[int] = set()
            for first, last in _place_windows(rng, n_clips, queries_per_video, *window_range):
                if fresh_queries:
                    tokens = _unit(rng.normal(size=(words_per_query, dim)))
                else:
                    choice = rng.choice([c for c in range(n_concepts) if c not in words_used],
                                        words_per_query, replace=False)
                    words_used.update(int(c) for c in choice)
                    tokens = concepts[choice] + rng.normal(scale=0.05, size=(words_per_query, dim))
                sentence = _unit(tokens.sum(axis=0))
                feats[first : last + 1] += signal * sentence
                text = f"query {qid}"
                if clip_like and not fresh_queries:
                    tokens = np.concatenate([frame[:1], tokens, frame[1:]])
                    text = " ".join(CONCEPT_WORDS[c] for c in choice)
                np.savez(text_dir / f"{qid}.npz", last_hidden_state=tokens.astype(np.float32),
                         pooler_output=sentence.astype(np.float32))
                ids = list(range(first, last + 1))
                lines.append({
                    "qid": qid, "query": text, "vid": vid, "duration": n_clips * clip_len,
                    "relevant_windows": [[first * clip_len, (last + 1) * clip_len]],
                    "relevant_clip_ids": ids,
                    "saliency_scores": [[int(x) for x in rng.integers(2, 5, size=3)] for _ in ids],
                })
                qid += 1
            np.savez(video_dir / f"{vid}.npz", features=feats.astype(np.float32))
        with (root / f"{split}.jsonl").open("w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    return SyntheticDataset(root, root / "train.jsonl", root / "val.jsonl", video_dir, text_dir, dim, clip_len)
