"""Extract CLIP features for a folder of videos and a jsonl of queries, into feature stores the trainer reads.

    python -m univtg_core.training.extract --videos DIR --queries Q.jsonl --out DIR [--clip-weights openai]
    torchrun --nproc_per_node 4 -m univtg_core.training.extract ...   # each rank takes its own shard

Writes two feature stores (`univtg_core.store`): `<out>/vid_clip` with one entry per video named by its file
stem (the vid), array `features` (one CLIP image embedding per clip of `--clip_length` s), and
`<out>/txt_clip` with one entry per qid, arrays `last_hidden_state` (per token) and `pooler_output` (the
sentence embedding, which language-free evaluation uses); on rank 0, `<out>/annotations.jsonl`: the queries
with any missing `duration` filled in from the video. `--t_feat_dir`/`--v_feat_dirs` of the trainer take
these folders as they are. Videos stream into the store chunk by chunk, so a stopped run resumes inside the
video it stopped in; finished entries are skipped; a damaged one is redone. `<out>/extract_info.json`
records the encoder; resuming with another encoder is refused.
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

from ..errors import StoreFullError, UniVTGError, VideoReadError
from ..video import VIDEO_SUFFIXES
from .data import DataError, load_jsonl, save_jsonl

logger = logging.getLogger("univtg_core.training.extract")



def _load_encoder(model_name: str, weights: str, device: str | None):
    from ..encoders import load_clip_encoder

    return load_clip_encoder(model_name=model_name, weights=weights, device=device)


def _probe_duration(path: Path) -> float:
    from ..video import probe_video

    return float(probe_video(path).duration)


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """Items rank, rank + world, ...: every item goes to exactly one rank."""
    return list(items[rank::world_size])


def list_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"video folder not found: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    stems = [p.stem for p in videos]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise DataError(f"{folder}: several videos share the name(s) {duplicates[:5]}; vids must be unique")
    return videos


def _check_info(out: Path, info: dict) -> None:
    path = out / "extract_info.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if {k: old.get(k) for k in info} != info:
            raise DataError(f"{out} was extracted with {old}, not {info}; use another --out or the same encoder")
    else:
        path.write_text(json.dumps(info, indent=2))


def extract(videos_dir: str | Path, out: str | Path, queries: str | Path | None = None,
            model_name: str = "ViT-B-32", weights: str = "openai", clip_len: float = 2.0,
            batch_size: int = 32, device: str | None = None, rank: int = 0, world_size: int = 1,
            progress: bool = True) -> dict:
    """Extract this rank's shard of videos and queries; returns counts {videos, skipped, failed, queries}."""
    from tqdm import tqdm

    from ..store import FeatureStore

    out = Path(out)
    videos_store, texts_store = FeatureStore(out / "vid_clip"), FeatureStore(out / "txt_clip")
    records = load_jsonl(queries) if queries else []
    all_videos = list_videos(videos_dir)
    mine = shard(all_videos, rank, world_size)
    todo = [p for p in mine if videos_store.get(p.stem) is None]
    my_queries = [r for r in shard(records, rank, world_size) if texts_store.get(str(r["qid"])) is None]
    counts = {"videos": 0, "skipped": len(mine) - len(todo), "failed": [], "queries": 0}
    if todo or my_queries:
        encoder = _load_encoder(model_name, weights, device)
        fingerprint = str(getattr(encoder, "fingerprint", weights))
        if rank == 0:
            _check_info(out, {"model": model_name, "fingerprint": fingerprint, "clip_length": clip_len})
        for path in tqdm(todo, desc=f"videos (rank {rank})", disable=not progress):
            try:
                _extract_video(videos_store, encoder, path, clip_len, fingerprint)
            except StoreFullError:
                raise  # every later video would fail the same way
            except UniVTGError as exc:
                logger.error("skipping %s: %s", path, exc)
                counts["failed"].append(str(path))
                continue
            counts["videos"] += 1
        for record in tqdm(my_queries, desc=f"queries (rank {rank})", disable=not progress):
            if not str(record.get("query") or "").strip():
                raise DataError(f"{queries}: qid {record.get('qid')!r} has no query text")
            features = encoder.encode_text(record["query"])
            texts_store.put(str(record["qid"]), {"last_hidden_state": np.asarray(features.tokens, np.float32),
                                                 "pooler_output": np.asarray(features.sentence, np.float32)},
                            meta={"query": record["query"], "encoder": fingerprint})
            counts["queries"] += 1
    if rank == 0 and records:
        by_stem = {p.stem: p for p in all_videos}
        filled = []
        for record in records:
            if "duration" not in record and str(record.get("vid")) in by_stem:
                record = {**record, "duration": round(_probe_duration(by_stem[str(record["vid"])]), 3)}
            filled.append(record)
        save_jsonl(filled, out / "annotations.jsonl")
    return counts


def _extract_video(store, encoder, path: Path, clip_len: float, fingerprint: str) -> None:
    """Stream one video's features into its entry, resuming a partial one; a broken file leaves none."""
    total = encoder.expected_clips(path, clip_len)
    meta = {"encoder": fingerprint, "clip_len": float(clip_len), "source": path.name}
    with store.writer(path.stem, dim=int(encoder.embed_dim), total=total, meta=meta) as writer:
        if writer.entry is not None:
            return
        try:
            for chunk in encoder.iter_video_features(path, clip_len, start_clip=writer.rows):
                writer.append(chunk)
            if total is not None and writer.rows != total:
                raise VideoReadError(f"{path.name}: the encoder gave {writer.rows} of {total} clips")
            writer.complete()
        except VideoReadError:
            writer.abort()  # a broken file: resuming would fail the same way
            raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m univtg_core.training.extract",
                                     description="CLIP features for your own videos and queries (resumable).")
    parser.add_argument("--videos", required=True, help="folder of videos; the file stem is the vid")
    parser.add_argument("--queries", help="jsonl with qid and query (and vid, relevant_windows to train)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--clip-weights", default="openai", help="openai, random or a checkpoint path")
    parser.add_argument("--clip_length", "--clip-length", type=float, default=2.0, help="seconds per clip")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when available")
    args = parser.parse_args(argv)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(format=f"%(levelname)s [rank {rank}] %(name)s: %(message)s", level=logging.INFO)
    device = args.device
    if device is None and world > 1:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    try:
        counts = extract(args.videos, args.out, args.queries, args.clip_model, args.clip_weights,
                         args.clip_length, args.batch_size, device, rank, world, progress=os.isatty(2))
    except UniVTGError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("rank %d/%d: %d videos extracted, %d already done, %d queries; %d failed", rank, world,
                counts["videos"], counts["skipped"], counts["queries"], len(counts["failed"]))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
