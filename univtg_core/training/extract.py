"""Extract video features (CLIP, SlowFast) for a folder of videos and CLIP features for a jsonl of queries, into
feature stores the trainer reads.

    python -m univtg_core.training.extract --videos DIR --queries Q.jsonl --out DIR [--clip-weights openai]
    python -m univtg_core.training.extract --features clip slowfast --slowfast-weights SLOWFAST_8x8_R50.pkl ...
    torchrun --nproc_per_node 4 -m univtg_core.training.extract ...   # each rank takes its own shard

Writes feature stores (`univtg_core.store`) in the official datasets' layout (UniVTG's `vid_slowfast`,
`vid_clip`, `txt_clip`): `<out>/vid_<source>` for each of `--features` with one entry per video named by its
file stem (the vid), array `features` (one row per clip of `--clip_length` s: 2 for QVHighlights, 1 for
Charades-STA; CLIP: the image embedding of the clip's frame, SlowFast: HERO's 2304-d feature of the clip's
30 fps frames), and `<out>/txt_clip` with one entry per qid, arrays `last_hidden_state` (per token) and
`pooler_output` (the sentence embedding, which language-free evaluation uses); on rank 0,
`<out>/annotations.jsonl`: the queries with any missing `duration` filled in from the video. The trainer's
`--v_feat_dirs out/vid_slowfast out/vid_clip --t_feat_dir out/txt_clip` take these folders as they are (it
cuts the sources to the shortest, as the official datasets: SlowFast keeps ceil(duration / L) clips, CLIP
round(duration / L)). Videos stream into the store chunk by chunk, so a stopped run resumes inside the video
it stopped in; finished entries are skipped; a damaged one is redone. `<out>/extract_info.json` records each
encoder; resuming with another encoder for a source is refused.
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



FEATURES = ("clip", "slowfast")  # the video sources this command computes


def _load_encoder(model_name: str, weights: str, device: str | None, batch_size: int = 32):
    from ..encoders import load_clip_encoder

    encoder = load_clip_encoder(model_name=model_name, weights=weights, device=device)
    encoder.batch_size = int(batch_size)  # frames per forward pass (--batch_size)
    return encoder


def _load_slowfast(weights: str | None, device: str | None):
    from ..slowfast import load_slowfast_encoder
    from ..sources import missing_slowfast_weights

    if not weights:
        from ..models import FeatureSource, InputSpec

        spec = InputSpec(video=(FeatureSource("slowfast", 2304),), text=FeatureSource("clip_tokens", 512),
                         clip_len=2.0, window=75)
        raise missing_slowfast_weights(spec, "--features slowfast")
    return load_slowfast_encoder(weights, device=device)


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
    """Refuse a setting that differs from what the folder was extracted with; record the new ones."""
    path = out / "extract_info.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    changed = {k: (old[k], v) for k, v in info.items() if k in old and old[k] != v}
    if changed:
        raise DataError(f"{out} was extracted with {old}, not {info}; use another --out or the same encoders")
    if not path.is_file() or any(k not in old for k in info):
        path.write_text(json.dumps({**old, **info}, indent=2))


def extract(videos_dir: str | Path, out: str | Path, queries: str | Path | None = None,
            model_name: str = "ViT-B-32", weights: str = "openai", clip_len: float = 2.0,
            batch_size: int = 32, device: str | None = None, rank: int = 0, world_size: int = 1,
            progress: bool = True, features: Sequence[str] = ("clip",),
            slowfast_weights: str | None = None) -> dict:
    """Extract this rank's shard of videos (each of `features`: "clip", "slowfast") and queries; returns
    counts {videos, skipped, failed, queries}."""
    from tqdm import tqdm

    from ..store import FeatureStore

    features = tuple(dict.fromkeys(features))
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise DataError(f"--features takes {' and/or '.join(FEATURES)}; got {list(features)}")
    out = Path(out)
    stores = {name: FeatureStore(out / f"vid_{name}") for name in features}
    texts_store = FeatureStore(out / "txt_clip")
    records = load_jsonl(queries) if queries else []
    all_videos = list_videos(videos_dir)
    mine = shard(all_videos, rank, world_size)
    todo = [p for p in mine if any(store.get(p.stem) is None for store in stores.values())]
    my_queries = [r for r in shard(records, rank, world_size) if texts_store.get(str(r["qid"])) is None]
    counts = {"videos": 0, "skipped": len(mine) - len(todo), "failed": [], "queries": 0}
    if todo or my_queries:
        encoders: dict = {}
        if "clip" in features or my_queries:
            encoders["clip"] = _load_encoder(model_name, weights, device, batch_size)
        if "slowfast" in features and todo:
            encoders["slowfast"] = _load_slowfast(slowfast_weights, device)
        info = {"clip_length": clip_len}
        if "clip" in encoders:
            info.update(model=model_name, fingerprint=str(getattr(encoders["clip"], "fingerprint", weights)))
        if "slowfast" in encoders:
            info["slowfast_fingerprint"] = str(encoders["slowfast"].fingerprint)
        if rank == 0:
            _check_info(out, info)
        for path in tqdm(todo, desc=f"videos (rank {rank})", disable=not progress):
            try:
                for name in features:
                    enc = encoders[name]
                    _extract_video(stores[name], enc, path, clip_len, str(enc.fingerprint))
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
            text = encoders["clip"].encode_text(record["query"])
            texts_store.put(str(record["qid"]), {"last_hidden_state": np.asarray(text.tokens, np.float32),
                                                 "pooler_output": np.asarray(text.sentence, np.float32)},
                            meta={"query": record["query"], "encoder": info.get("fingerprint")})
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
                                     description="CLIP (and SlowFast) features for your own videos and queries "
                                                 "(resumable).")
    parser.add_argument("--videos", required=True, help="folder of videos; the file stem is the vid")
    parser.add_argument("--queries", help="jsonl with qid and query (and vid, relevant_windows to train)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--clip-weights", default="openai", help="openai, random or a checkpoint path")
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=["clip"],
                        help="video features to extract, each into <out>/vid_<name> (default: clip; "
                             "UniVTG's and MESM's SlowFast checkpoints: clip slowfast)")
    parser.add_argument("--slowfast-weights", default=os.environ.get("UNIVTG_SLOWFAST_WEIGHTS") or None,
                        help="PySlowFast's SLOWFAST_8x8_R50.pkl, a .safetensors converted from it, or random "
                             "(or $UNIVTG_SLOWFAST_WEIGHTS); needed with --features slowfast")
    parser.add_argument("--clip_length", "--clip-length", type=float, default=2.0, help="seconds per clip")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per CLIP forward pass (default 32)")
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
                         args.clip_length, args.batch_size, device, rank, world, progress=os.isatty(2),
                         features=args.features, slowfast_weights=args.slowfast_weights)
    except UniVTGError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("rank %d/%d: %d videos extracted, %d already done, %d queries; %d failed", rank, world,
                counts["videos"], counts["skipped"], counts["queries"], len(counts["failed"]))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
