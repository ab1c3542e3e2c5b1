"""Extract CLIP features for a folder of videos and a jsonl of queries, in the trainer's layout.

    python -m univtg_core.training.extract --videos DIR --queries Q.jsonl --out DIR [--clip-weights openai]
    torchrun --nproc_per_node 4 -m univtg_core.training.extract ...   # each rank takes its own shard

Writes `<out>/vid_clip/<vid>.npz` (`features`: one CLIP image embedding per clip of `--clip_length` s, the
video's file stem as vid), `<out>/txt_clip/<qid>.npz` (`last_hidden_state` per token, `pooler_output`
the sentence embedding, which language-free evaluation uses) and, on rank 0, `<out>/annotations.jsonl`:
the queries with any missing `duration` filled in from the video. Files are written atomically and
existing ones are skipped, so a stopped run resumes where it stopped. `<out>/extract_info.json` records
the encoder; resuming with another encoder is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import UniVTGError
from ..video import VIDEO_SUFFIXES
from .data import DataError, load_jsonl, save_jsonl

logger = logging.getLogger("univtg_core.training.extract")



def _load_encoder(model_name: str, weights: str, device: str | None):
    from ..encoders import load_clip_encoder

    return load_clip_encoder(model_name=model_name, weights=weights, device=device)


def _iter_frames(path: Path, clip_len: float, size: int, batch_size: int) -> Iterator[np.ndarray]:
    from ..video import iter_clip_frames

    return iter_clip_frames(path, clip_len=clip_len, size=size, batch_size=batch_size)


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


def _complete(path: Path, key: str) -> bool:
    """An existing, readable feature file (a file cut short by a crash is redone)."""
    if not path.is_file():
        return False
    try:
        with np.load(path) as data:
            return key in data.files and data[key].size > 0
    except Exception:  # noqa: BLE001 - any read failure means "redo it"
        return False


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".partial.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


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

    out = Path(out)
    video_dir, text_dir = out / "vid_clip", out / "txt_clip"
    video_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    records = load_jsonl(queries) if queries else []
    all_videos = list_videos(videos_dir)
    mine = shard(all_videos, rank, world_size)
    todo = [p for p in mine if not _complete(video_dir / f"{p.stem}.npz", "features")]
    my_queries = [r for r in shard(records, rank, world_size)
                  if not _complete(text_dir / f"{r['qid']}.npz", "last_hidden_state")]
    counts = {"videos": 0, "skipped": len(mine) - len(todo), "failed": [], "queries": 0}
    if todo or my_queries:
        encoder = _load_encoder(model_name, weights, device)
        if rank == 0:
            _check_info(out, {"model": model_name, "fingerprint": str(getattr(encoder, "fingerprint", weights)),
                              "clip_length": clip_len})
        for path in tqdm(todo, desc=f"videos (rank {rank})", disable=not progress):
            try:
                feats = [encoder.encode_frames(batch)
                         for batch in _iter_frames(path, clip_len, encoder.image_size, batch_size)]
            except UniVTGError as exc:
                logger.error("skipping %s: %s", path, exc)
                counts["failed"].append(str(path))
                continue
            _save_npz(video_dir / f"{path.stem}.npz", features=np.concatenate(feats).astype(np.float32))
            counts["videos"] += 1
        for record in tqdm(my_queries, desc=f"queries (rank {rank})", disable=not progress):
            if not str(record.get("query") or "").strip():
                raise DataError(f"{queries}: qid {record.get('qid')!r} has no query text")
            features = encoder.encode_text(record["query"])
            _save_npz(text_dir / f"{record['qid']}.npz", last_hidden_state=np.asarray(features.tokens, np.float32),
                      pooler_output=np.asarray(features.sentence, np.float32))
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
