"""UniVTG's CLIP teacher (teacher/clip2label.py): scalable pseudo-labels from clip features and concept texts.

For each video, the cosine similarity between every clip's CLIP image feature and every concept's CLIP text
embedding is computed; the `top_k` concepts with the highest summed similarity become pseudo-queries.
Per concept:
- curve: the similarity quantised to steps of `threshold` (floor(s / threshold)) for every clip;
- interval: the runs of clips at the curve's maximum level (the official windows);
- point: the single most similar clip.

Output: `<out>/teacher.jsonl` in the trainer's jsonl layout (each line names `t_feat_dir: concepts`) and
`<out>/concepts/<i>.npz` with the concept's `last_hidden_state` tokens and `pooler_output`, so
`python -m univtg_core.training --train_path <out>/teacher.jsonl ...` trains on it directly.

CLI: `python -m univtg_core.training.teacher --v_feat_dir DIR --concepts concepts.txt --out DIR`
(concepts encoded with our CLIP encoder, `--clip-weights`), or `--concept_feat_dir DIR` with features
already in the query layout (<i>.npz with `pooler_output` and `last_hidden_state`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UniVTGError
from .data import DataError, save_jsonl
from .losses import cosine_matrix

logger = logging.getLogger("univtg_core.training.teacher")

LABEL_TYPES = ("interval", "curve", "point")
CONCEPT_DIR = "concepts"


def quantise(scores: np.ndarray, threshold: float) -> np.ndarray:
    """floor(score / threshold) per clip (the official `s // th`)."""
    return np.floor_divide(np.asarray(scores, dtype=np.float64), threshold).astype(np.int64)


def max_level_windows(levels: Sequence[int], clip_len: float) -> list[list[float]]:
    """Runs of clips at the maximum level, as [start, end] seconds (a run reaching the end is kept)."""
    levels = list(levels)
    top = max(levels)
    windows, start = [], None
    for i, level in enumerate(levels + [None]):
        if level == top and start is None:
            start = i
        elif level != top and start is not None:
            windows.append([start * clip_len, i * clip_len])
            start = None
    return windows


def video_labels(vid: str, clip_feats: np.ndarray, concept_feats: np.ndarray, concepts: Sequence[str],
                 clip_len: float = 2.0, top_k: int = 5, threshold: float = 0.05,
                 types: Sequence[str] = LABEL_TYPES) -> list[dict]:
    """Pseudo-label records of one video (qid = concept index, features in `concepts/`)."""
    # (L, C) in float32 with torch, as the official teacher computes it (its sim_matrix is our loss's)
    sim = cosine_matrix(torch.as_tensor(np.asarray(clip_feats, np.float32)),
                        torch.as_tensor(np.asarray(concept_feats, np.float32))).numpy()
    n_clips = len(sim)
    duration = float(n_clips * clip_len)
    order = np.argsort(-sim.sum(axis=0), kind="stable")[:top_k]
    records = []
    for c in order.tolist():
        levels = quantise(sim[:, c], threshold)
        base = {"qid": c, "query": concepts[c], "vid": vid, "duration": duration, "t_feat_dir": CONCEPT_DIR}
        windows = max_level_windows(levels.tolist(), clip_len)
        if "curve" in types:
            records.append({**base, "relevant_windows": windows, "relevant_clip_ids": list(range(n_clips)),
                            "saliency_scores": [[int(v)] for v in levels], "type": "curve"})
        if "interval" in types:
            records.append({**base, "relevant_windows": windows, "type": "interval"})
        if "point" in types:
            best = int(np.argmax(sim[:, c]))
            records.append({**base, "relevant_windows": [[best * clip_len, (best + 1) * clip_len]], "type": "point"})
    return records


def read_concepts(path: str | Path) -> list[str]:
    """Concept names: a JSON list, or one per line (OpenImages' class-descriptions CSV: the second column)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"concept list not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        concepts = json.loads(text)
    elif path.suffix == ".csv":
        import csv

        rows = list(csv.reader(text.splitlines()))
        concepts = [row[1] if len(row) > 1 else row[0] for row in rows[1:] if row]
    else:
        concepts = [line.strip() for line in text.splitlines() if line.strip()]
    if not concepts or not all(isinstance(c, str) for c in concepts):
        raise DataError(f"{path}: expected a list of concept names")
    return concepts


def load_concept_features(feat_dir: str | Path, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(C, D) pooled embeddings and per-concept token features from <dir>/<i>.npz."""
    pooled, tokens = [], []
    for i in range(n):
        path = Path(feat_dir) / f"{i}.npz"
        if not path.is_file():
            raise DataError(f"concept feature file not found: {path}")
        with np.load(path, allow_pickle=False) as data:
            if "pooler_output" not in data.files:
                raise DataError(f"{path} has no 'pooler_output' (the text embedding compared with images)")
            pooled.append(np.asarray(data["pooler_output"], dtype=np.float32).reshape(-1))
            tok = data["last_hidden_state"] if "last_hidden_state" in data.files else data["pooler_output"]
            tokens.append(np.asarray(tok, dtype=np.float32).reshape(-1, pooled[-1].shape[0]))
    return np.stack(pooled), tokens


def encode_concepts(concepts: Sequence[str], prompt: str, model_name: str, weights: str,
                    device: str | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Encode `prompt.format(concept)` with our CLIP encoder (the official teacher uses 'a photo of a {}')."""
    from ..encoders import load_clip_encoder

    encoder = load_clip_encoder(model_name=model_name, weights=weights, device=device)
    pooled, tokens = [], []
    for concept in concepts:
        features = encoder.encode_text(prompt.format(concept))
        pooled.append(np.asarray(features.sentence, dtype=np.float32).reshape(-1))
        tokens.append(np.asarray(features.tokens, dtype=np.float32))
    return np.stack(pooled), tokens


def run_teacher(v_feat_dir: str | Path, concepts: Sequence[str], concept_feats: np.ndarray,
                concept_tokens: Sequence[np.ndarray], out: str | Path, clip_len: float = 2.0, top_k: int = 5,
                threshold: float = 0.05, types: Sequence[str] = LABEL_TYPES, videos: Sequence[str] | None = None,
                progress: bool = True) -> Path:
    """Label every video of `v_feat_dir` (or the given vids); returns the jsonl path."""
    from tqdm import tqdm

    out = Path(out)
    concept_dir = out / CONCEPT_DIR
    concept_dir.mkdir(parents=True, exist_ok=True)
    for i, (pooled, tokens) in enumerate(zip(concept_feats, concept_tokens)):
        np.savez(concept_dir / f"{i}.npz", last_hidden_state=tokens, pooler_output=pooled)
    v_feat_dir = Path(v_feat_dir)
    if videos is None:
        videos = sorted(p.stem for p in v_feat_dir.glob("*.npz"))
    if not videos:
        raise DataError(f"no <vid>.npz video features in {v_feat_dir}")
    records = []
    for vid in tqdm(videos, desc="teacher", disable=not progress):
        path = v_feat_dir / f"{vid}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                feats = np.asarray(data["features"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read video features {path}: {exc}") from exc
        if feats.ndim != 2 or feats.shape[1] != concept_feats.shape[1]:
            raise DataError(f"{path}: features of shape {feats.shape} do not match the concept embeddings "
                            f"({concept_feats.shape[1]} wide); use CLIP image features (vid_clip)")
        if len(feats):
            records += video_labels(vid, feats, concept_feats, concepts, clip_len, top_k, threshold, types)
    jsonl = out / "teacher.jsonl"
    save_jsonl(records, jsonl)
    logger.info("wrote %d pseudo-labels for %d videos to %s", len(records), len(videos), jsonl)
    return jsonl


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m univtg_core.training.teacher",
                                     description="CLIP teacher: interval / curve / point pseudo-labels.")
    parser.add_argument("--v_feat_dir", required=True, help="CLIP image features, <vid>.npz with 'features'")
    parser.add_argument("--concepts", required=True, help="concept names: txt (one per line), json or csv")
    parser.add_argument("--out", required=True, help="folder for teacher.jsonl and concepts/")
    parser.add_argument("--concept_feat_dir", help="precomputed <i>.npz concept features (else encode)")
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--clip-weights", default="openai", help="openai, random or a checkpoint path")
    parser.add_argument("--device", default=None)
    parser.add_argument("--prompt", default="a photo of a {}")
    parser.add_argument("--clip_length", type=float, default=2.0)
    parser.add_argument("--top_k", type=int, default=5, help="concepts per video")
    parser.add_argument("--threshold", type=float, default=0.05, help="curve quantisation step")
    parser.add_argument("--types", nargs="+", default=list(LABEL_TYPES), choices=LABEL_TYPES)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        concepts = read_concepts(args.concepts)
        if args.concept_feat_dir:
            pooled, tokens = load_concept_features(args.concept_feat_dir, len(concepts))
        else:
            pooled, tokens = encode_concepts(concepts, args.prompt, args.clip_model, args.clip_weights, args.device)
        run_teacher(args.v_feat_dir, concepts, pooled, tokens, args.out, args.clip_length, args.top_k,
                    args.threshold, args.types, progress=os.isatty(2))
    except UniVTGError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
