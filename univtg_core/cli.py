"""Command line: `python -m univtg_core predict|index ...`.

Bad input exits non-zero with one ``error:`` line on stderr, found before any model is loaded where the
input alone shows it (a missing or broken video, a folder, a TorchScript archive as ``--resume``). Long
work shows a tqdm bar on a terminal (``--progress`` forces it, e.g. into a log file); a video served from
the cache shows none. stderr holds nothing else but our own log records: the decoder libraries' messages
are silenced (``-v`` shows them). Text we print (queries, file names, messages) has its control characters
escaped, so nothing a user typed or named can move the cursor or hide a line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import unicodedata
import zipfile
from pathlib import Path

from tqdm import tqdm

from .errors import CheckpointError, QueryError, UniVTGError
from .formatting import format_time
from .video import VIDEO_SUFFIXES, count_clips, probe_video, silence_decoder_logs

logger = logging.getLogger("univtg_core")
# Bidirectional overrides and isolates: format characters that reorder what a terminal shows.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` with control characters (and bidi overrides) written as escapes: ``\\n``, ``\\x1b``, ``\\u202e``."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


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
    parser.add_argument("--progress", action="store_true",
                        help="show progress bars even when stderr is not a terminal")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log more, including the decoder libraries' own messages")


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


def _bars_wanted(args) -> bool:
    """Progress bars on a terminal, or anywhere when asked with ``--progress``."""
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


class _Bar:
    """Progress callback that drives one tqdm bar per video: drawn once work starts, none from the cache.

    The bar appears at the first call that has work left (``done < total``): a video served from the cache
    reports ``(total, total)`` at once and gets no bar, so no rate is computed over no work.
    """

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if done >= total:
                return
            self.bar = tqdm(total=total, initial=done, desc=printable(self.label), unit="clip", leave=False,
                            file=sys.stderr, dynamic_ncols=True)
            return
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _index_one(grounder, path: Path, bars: bool):
    bar = _Bar(path.name, bars)
    try:
        return grounder.index(path, progress=bar)
    finally:
        bar.close()  # before anything else is printed: an error line never shares the bar's line


def _describe_index(index) -> str:
    how = "from cache" if index.from_cache else f"indexed in {index.seconds:.1f} s"
    return (f"{printable(index.path)}: {index.duration:.1f} s, {index.info.fps:.2f} fps, {index.n_clips} clips "
            f"of {index.clip_len:g} s ({how})")


def _print_prediction(pred, top_k: int) -> None:
    def hms(seconds: float) -> str:  # the app's format: hours on every time of a video that has them
        return format_time(seconds, duration=pred.duration)

    print(f"\nQuery: {printable(pred.query)}  [{pred.mode}]")
    print(f"  {'#':>2}  {'moment':<17}  {'seconds':<15}  {'score':>7}")
    for rank, m in enumerate(pred.moments[:top_k], 1):
        span = f"{hms(m.start)}–{hms(m.end)}"
        print(f"  {rank:>2}  {span:<17}  {f'{m.start:.1f}–{m.end:.1f}':<15}  {m.score:7.4f}")
    print(f"  top highlight: {hms(pred.highlight)}")
    print(f"  summary: {', '.join(hms(t) for t in pred.summary)}")


def _check_resume(args) -> None:
    """A ``--resume`` that cannot be a checkpoint is refused before anything loads (and before torch.load,
    which would hand a TorchScript archive to torch.jit.load with a warning)."""
    if not args.resume:
        return
    path = Path(args.resume).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {str(path)!r}. Check the --resume path.")
    if not path.is_file():
        raise CheckpointError(f"--resume {str(path)!r} is a folder; pass the checkpoint file (model_best.ckpt).")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise CheckpointError(f"{str(path)!r} is a TorchScript archive, not a checkpoint: pass a UniVTG "
                                  f"checkpoint (model_best.ckpt) as --resume (TorchScript CLIP weights go to "
                                  f"--clip-weights).")


def _check_queries(args) -> None:
    if not args.query and not args.query_image:
        raise QueryError("give at least one --query TEXT or --query-image IMAGE")
    for text in args.query:
        if not text.strip():
            raise QueryError("a --query is empty: type what to look for")
    for image in args.query_image:
        path = Path(image).expanduser()
        if not path.is_file():
            what = "is a folder, not an image" if path.is_dir() else "not found"
            raise QueryError(f"query image {what}: {str(path)!r}")


def _check_video(args, path) -> None:
    """Probe the video (missing, a folder, broken, a still image) and, when the clip length is known without
    the checkpoint, refuse one shorter than a clip: all before CLIP loads."""
    info = probe_video(path)
    if args.clip_len or not args.resume:
        count_clips(info, args.clip_len or 2.0)


def run_predict(args) -> int:
    _check_queries(args)
    _check_video(args, args.video)
    _check_resume(args)
    grounder = _grounder(args, top_k=args.top_k, nms_threshold=args.nms, summary_budget=args.summary_budget)
    index = _index_one(grounder, Path(args.video), _bars_wanted(args))
    print(_describe_index(index))
    predictions = [grounder.query(index, text=text) for text in args.query]
    for image in args.query_image:
        pred = grounder.query(index, image=image)  # an unreadable image is a QueryError naming the file
        predictions.append(_relabel(pred, f"[image] {Path(image).name}"))
    lines = []
    for pred in predictions:
        _print_prediction(pred, args.top_k)
        record = {"vid": Path(args.video).name, **pred.to_json()}
        lines.append(json.dumps(record))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {len(lines)} prediction(s) to {printable(args.json_out)}")
    return 0


def _relabel(pred, label: str):
    from dataclasses import replace

    return replace(pred, query=label)


def _video_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UniVTGError(f"not found: {str(path)!r}. Check the path.")
    if not files:
        raise UniVTGError(f"no video files under {', '.join(paths)} (looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    return files


def _error(message: str) -> None:
    """One ``error:`` line on stderr, clear of any progress bar."""
    tqdm.write(f"error: {printable(message)}", file=sys.stderr)


def run_index(args) -> int:
    files = _video_files(args.paths)
    readable = []
    for path in files:  # probed before CLIP loads: a single broken file needs no model to be refused
        try:
            _check_video(args, path)
            readable.append(path)
        except UniVTGError as exc:
            if len(files) == 1:
                raise
            _error(str(exc))
    failures = len(files) - len(readable)
    if readable:
        grounder = _grounder(args)
        bars = _bars_wanted(args)
        for path in tqdm(readable, desc="videos", unit="video", disable=len(readable) < 2 or not bars,
                         file=sys.stderr, leave=False):
            try:
                index = _index_one(grounder, path, bars)
            except UniVTGError as exc:
                if len(files) == 1:
                    raise
                failures += 1
                _error(str(exc))
                continue
            tqdm.write(_describe_index(index), file=sys.stdout)
    if failures:
        _error(f"{failures} of {len(files)} videos could not be indexed")
        return 1
    return 0


def setup_logging(verbose: bool = False) -> None:
    """Our log records on stderr (WARNING and up, everything with ``verbose``); the decoders' own kept off."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    silence_decoder_logs(verbose)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    redirect = _logging_beside_bars() if _bars_wanted(args) else contextlib.nullcontext()
    try:
        with redirect:
            return run_predict(args) if args.command == "predict" else run_index(args)
    except UniVTGError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, the traceback only with -v
        logger.debug("unexpected failure", exc_info=True)
        _error(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)")
        return 1


def _logging_beside_bars():
    """Log records written above the progress bars instead of through them."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()
