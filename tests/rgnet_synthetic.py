"""A planted-signal long-video set for RGNet's trainer: 5 fps features, each video holding a few planted
moments of distinct concepts (each one a distractor for the others' queries), in MAD's layout (annotation json
converted by our MAD converter, features in .h5 files keyed by movie and query) or Ego4D's (CONE-style jsonl,
a folder of <clip>.npz per video, query .npz with token_features / cls_features)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 5.0


@dataclass
class LongVideoSet:
    root: Path
    train_path: Path
    val_path: Path
    video_feats: Path  # an .h5 file or a folder
    text_feats: Path
    val_records: list[dict]  # qid, vid, start, end (s), n_frames
    clip_length: float = 1.0 / FPS


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _videos(rng, n_videos, n_frames, dim, concepts, moments_per_video, moment_frames, signal):
    """(features, [(concept, first frame, last frame + 1)]) per video; moments do not overlap."""
    out = []
    for _ in range(n_videos):
        scenes = np.repeat(rng.normal(size=(n_frames // 50 + 1, dim)), 50, axis=0)[:n_frames]
        feats = 0.6 * scenes + 0.3 * rng.normal(size=(n_frames, dim))
        chosen = rng.choice(len(concepts), size=moments_per_video, replace=False)
        slots = rng.choice(n_frames // 100, size=moments_per_video, replace=False)
        planted = []
        for concept, slot in zip(chosen, slots):
            length = int(rng.integers(*moment_frames))
            start = int(slot * 100 + rng.integers(0, 100 - length))
            feats[start:start + length] += signal * concepts[concept]
            planted.append((int(concept), start, start + length))
        out.append((feats.astype(np.float32), planted))
    return out


def _query(rng, concept_vec, n_tokens, dim_tokens, project):
    tokens = concept_vec @ project + 0.3 * rng.normal(size=(n_tokens, dim_tokens))
    sentence = concept_vec + 0.1 * rng.normal(size=concept_vec.shape)
    return tokens.astype(np.float32), sentence.astype(np.float32)


def write_long_video_set(root: Path, layout: str = "mad", n_train: int = 24, n_val: int = 8, n_frames: int = 600,
                         dim: int = 32, token_dim: int = 32, n_concepts: int = 6, moments_per_video: int = 3,
                         moment_frames: tuple[int, int] = (15, 40), signal: float = 2.5, seed: int = 0) -> LongVideoSet:
    import h5py

    from univtg_core.training.converters import convert_mad
    from univtg_core.training.data import save_jsonl

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    concepts = _unit(rng.normal(size=(n_concepts, dim))) * np.sqrt(dim) * 0.5
    project = rng.normal(size=(dim, token_dim)) / np.sqrt(dim)
    duration = n_frames / FPS
    splits = {"train": _videos(rng, n_train, n_frames, dim, concepts, moments_per_video, moment_frames, signal),
              "val": _videos(rng, n_val, n_frames, dim, concepts, moments_per_video, moment_frames, signal)}
    videos, queries, rows, val_records = {}, {}, {"train": [], "val": []}, []
    for split, items in splits.items():
        for v, (feats, planted) in enumerate(items):
            vid = f"{split}_movie_{v:03d}"
            videos[vid] = feats
            for m, (concept, first, last) in enumerate(planted):
                qid = f"{vid}_q{m}"
                queries[qid] = _query(rng, concepts[concept], int(rng.integers(3, 7)), token_dim, project)
                start, end = first / FPS, last / FPS
                rows[split].append({"qid": qid, "vid": vid, "query": f"concept {concept}", "start": start,
                                    "end": end})
                if split == "val":
                    val_records.append({"qid": qid, "vid": vid, "start": start, "end": end, "n_frames": n_frames})

    if layout == "mad":
        video_feats, text_feats = root / "CLIP_B32_frames_features_5fps.h5", root / "clip_text_features.h5"
        with h5py.File(video_feats, "w") as f:
            for vid, feats in videos.items():
                f.create_dataset(vid, data=feats.astype(np.float16))
        with h5py.File(text_feats, "w") as f:
            for qid, (tokens, sentence) in queries.items():
                group = f.create_group(qid)
                group.create_dataset("token_features", data=tokens)
                group.create_dataset("cls_features", data=sentence)
        paths = {}
        for split, split_rows in rows.items():
            mad = {r["qid"]: {"movie": r["vid"], "sentence": r["query"], "timestamps": [r["start"], r["end"]],
                              "ext_timestamps": [r["start"], r["end"]], "movie_duration": duration}
                   for r in split_rows}
            (root / f"MAD_{split}.json").write_text(json.dumps(mad))
            paths[split] = root / f"mad_{split}.jsonl"
            save_jsonl(convert_mad(root / f"MAD_{split}.json"), paths[split])
    else:
        video_feats, text_feats = root / "egovlp_video_feature", root / "egovlp_text_features"
        video_feats.mkdir(exist_ok=True)
        text_feats.mkdir(exist_ok=True)
        for vid, feats in videos.items():
            np.savez(video_feats / f"{vid}.npz", features=feats)
        for qid, (tokens, sentence) in queries.items():
            np.savez(text_feats / f"{qid}.npz", token_features=tokens, cls_features=sentence[None])
        paths = {}
        for split, split_rows in rows.items():
            paths[split] = root / f"ego_{split}.jsonl"
            with paths[split].open("w") as f:
                for r in split_rows:
                    f.write(json.dumps({"query_id": r["qid"], "query": r["query"], "video_id": r["vid"].split("_")[0],
                                        "clip_id": r["vid"], "timestamps": [r["start"], r["end"]],
                                        "duration": duration}) + "\n")
    return LongVideoSet(root, paths["train"], paths["val"], video_feats, text_feats, val_records)
