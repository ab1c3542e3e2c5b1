"""Command line: `python -m univtg_core predict|index ...`.

Bad input exits non-zero with one line on stderr; long work shows a tqdm bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from .errors import UniVTGError
from .formatting import format_time
from .video import VIDEO_SUFFIXES

logger = logging.getLogger("univtg_core")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", help="UniVTG checkpoint (model_best.ckpt); without it: zero-shot CLIP mode")
    parser.add_argument("--clip-weights", default="openai",
                        help="openai (download), random (offline smoke runs; meaningless results) or a local "
                             "file: open_clip state dict, .safetensors or OpenAI's TorchScript ViT-B-32.pt")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    parser.add_argument("--clip-len", type=float, default=None,
                        help="seconds per clip (default: the checkpoint's, else 2)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/univtg_core)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    parser.add_argument("--max-duration", type=float, default=None, help="refuse videos longer than this (s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m univtg_core",
                                     description="Video temporal grounding with UniVTG checkpoints or zero-shot CLIP.")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser("predict", help="find the moments of a video that match queries")
    predict.add_argument("video", help="video file")
    predict.add_argument("--query", "-q", action="append", default=[], help="text query (repeatable)")
    predict.add_argument("--query-image", action="append", default=[], help="example image as a query (repeatable)")
    predict.add_argument("--json", dest="json_out", help="write one JSON line per query to this file")
    predict.add_argument("--top-k", type=int, default=5, help="moments to keep after NMS (default 5)")
    predict.add_argument("--nms", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    predict.add_argument("--summary-budget", type=float, default=0.15,
                         help="share of the video the summary points may cover (default 0.15)")
    _add_model_options(predict)

    index = sub.add_parser("index", help="precompute and cache features for a video or a folder of videos")
    index.add_argument("paths", nargs="+", help="video files or folders")
    _add_model_options(index)
    return parser


def _grounder(args, **kwargs):
    from .pipeline import Grounder

    return Grounder.from_options(clip_weights=args.clip_weights, resume=args.resume, device=args.device,
                                 clip_model=args.clip_model, clip_len=args.clip_len, cache_dir=args.cache_dir,
                                 use_cache=not args.no_cache, max_duration=args.max_duration, **kwargs)


class _Bar:
    """Progress callback that drives one tqdm bar per video."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, unit="clip", leave=False, file=sys.stderr)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _index_one(grounder, path: Path):
    bar = _Bar(path.name)
    try:
        return grounder.index(path, progress=bar)
    finally:
        bar.close()


def _describe_index(index) -> str:
    how = "from cache" if index.from_cache else f"indexed in {index.seconds:.1f} s"
    return (f"{index.path}: {index.duration:.1f} s, {index.info.fps:.2f} fps, {index.n_clips} clips of "
            f"{index.clip_len:g} s ({how})")


def _print_prediction(pred, top_k: int) -> None:
    def hms(seconds: float) -> str:  # the app's format: hours on every time of a video that has them
        return format_time(seconds, duration=pred.duration)

    print(f"\nQuery: {pred.query}  [{pred.mode}]")
    if pred.query_cut:
        reader = "the model" if pred.mode == "model" else "CLIP"
        print(f"  note: the query's text has {pred.query_tokens} tokens; {reader} read {pred.tokens_read} token "
              f"rows, cut as its training features were")
    print(f"  {'#':>2}  {'moment':<17}  {'seconds':<15}  {'score':>7}")
    for rank, m in enumerate(pred.moments[:top_k], 1):
        span = f"{hms(m.start)}–{hms(m.end)}"
        print(f"  {rank:>2}  {span:<17}  {f'{m.start:.1f}–{m.end:.1f}':<15}  {m.score:7.4f}")
    print(f"  top highlight: {hms(pred.highlight)}")
    print(f"  summary: {', '.join(hms(t) for t in pred.summary)}")


def run_predict(args) -> int:
    if not args.query and not args.query_image:
        raise UniVTGError("give at least one --query TEXT or --query-image IMAGE")
    for text in args.query:
        if not text.strip():
            raise UniVTGError("a --query is empty: type what to look for")
    for image in args.query_image:
        if not Path(image).is_file():
            raise UniVTGError(f"query image not found: {image}")
    grounder = _grounder(args, top_k=args.top_k, nms_threshold=args.nms, summary_budget=args.summary_budget)
    index = _index_one(grounder, Path(args.video))
    print(_describe_index(index))
    predictions = [grounder.query(index, text=text) for text in args.query]
    for image in args.query_image:
        pred = grounder.query(index, image=image)  # an unreadable image is a QueryError naming the file
        predictions.append(_relabel(pred, f"[image] {Path(image).name}"))
    lines = []
    for pred in predictions:
        _print_prediction(pred, args.top_k)
        record = {"vid": Path(args.video).name, **pred.to_dict()}
        lines.append(json.dumps(record))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {len(lines)} prediction(s) to {args.json_out}")
    return 0


def _relabel(pred, label: str):
    from dataclasses import replace

    return replace(pred, query=label)


def _video_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UniVTGError(f"not found: {path}")
    if not files:
        raise UniVTGError(f"no video files under {', '.join(paths)} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    return files


def run_index(args) -> int:
    files = _video_files(args.paths)
    grounder = _grounder(args)
    failures = 0
    for path in tqdm(files, desc="videos", unit="video", disable=len(files) < 2, file=sys.stderr):
        try:
            print(_describe_index(_index_one(grounder, path)), flush=True)
        except UniVTGError as exc:
            if len(files) == 1:
                raise
            failures += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
    if failures:
        print(f"error: {failures} of {len(files)} videos could not be indexed", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logger.setLevel(logging.DEBUG)
    try:
        return run_predict(args) if args.command == "predict" else run_index(args)
    except UniVTGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, the traceback only with -v
        logger.debug("unexpected failure", exc_info=True)
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1
