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
import os
import sys
import unicodedata
from pathlib import Path

from tqdm import tqdm

from .errors import CheckpointError, QueryError, UniVTGError
from .formatting import format_length, format_score, format_span, format_time
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
    parser.add_argument("--slowfast-weights", default=os.environ.get("UNIVTG_SLOWFAST_WEIGHTS") or None,
                        metavar="PATH",
                        help="for checkpoints that read SlowFast features (e.g. 2818 wide: SlowFast + CLIP + tef): "
                             "PySlowFast's SLOWFAST_8x8_R50.pkl, a .safetensors converted from it, or random "
                             "(smoke runs); or $UNIVTG_SLOWFAST_WEIGHTS")
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
    _add_window_choice(predict)
    _add_model_options(predict)

    index = sub.add_parser("index", help="precompute and cache features for a video or a folder of videos")
    index.add_argument("paths", nargs="+", help="video files or folders")
    _add_model_options(index)

    split = sub.add_parser("predict-split", help="prediction files for a whole split from precomputed features")
    split.add_argument("--jsonl", required=True, help="queries: qid, query, vid (duration, relevant_windows ...)")
    split.add_argument("--features", nargs="+", required=True,
                       help="video features: folders of <vid>.npz, .h5 files or feature stores (several are "
                            "concatenated along the feature axis, as the trainer's --v_feat_dirs)")
    split.add_argument("--text-features", help="query features per qid (folder, .h5 or store); needed with --resume")
    split.add_argument("--text-field", default="last_hidden_state", help="token rows field (default last_hidden_state)")
    split.add_argument("--sentence-features", help="sentence embeddings per qid (default: --text-features)")
    split.add_argument("--sentence-field", default="pooler_output",
                       help="sentence embedding field (zero-shot, coarse first stage; default pooler_output)")
    split.add_argument("--out", required=True, help="prediction jsonl (one Prediction.to_dict() per query)")
    split.add_argument("--resume", help="checkpoint of any registered architecture; without it: zero-shot")
    split.add_argument("--clip-len", type=float, default=None,
                       help="seconds per feature row (default: the checkpoint's, else from the durations)")
    split.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    _add_long_video_options(split)
    split.add_argument("--top-k", type=int, default=10, help="moments kept per query (MAD R@100 needs 100)")
    split.add_argument("--nms", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    split.add_argument("--no-saliency", action="store_true",
                       help="leave the per-clip curve out of the file (MAD/Ego4D score moments only)")
    split.add_argument("-v", "--verbose", action="store_true", help="log more")

    cache = sub.add_parser("cache", help="list or prune the feature store")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    for name, text in (("list", "list the entries (complete and interrupted)"),
                       ("prune", "remove entries unused for a while, then the oldest past a size")):
        one = cache_sub.add_parser(name, help=text)
        one.add_argument("--cache-dir", default=None, help="cache folder (default ~/.cache/univtg_core); its store")
        one.add_argument("--store", default=None, help="a feature store folder itself (e.g. extract's vid_clip)")
        one.add_argument("-v", "--verbose", action="store_true", help="log more")
        if name == "prune":
            one.add_argument("--older-than", type=_duration, default=None,
                             help="remove entries not used for this long: 30d, 12h, 45m, 90s or seconds")
            one.add_argument("--max-size", type=_size, default=None,
                             help="then remove the least recently used until the store holds at most: 2GB, 500MB")
            one.add_argument("--partial-older-than", type=_duration, default=_duration("1d"),
                             help="interrupted entries (not resumed) go after this long (default 1d)")
            one.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    return parser


def _add_long_video_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, default=None,
                        help="clips per window (default: the model's; zero-shot: 150 s with --coarse-top-k)")
    parser.add_argument("--stride", type=int, default=None, help="clips between window starts (default half)")
    _add_window_choice(parser)
    parser.add_argument("--guidance", default=None, help="guidance score pickle (the seed's format, read safely)")
    parser.add_argument("--guidance-fps", type=float, default=5.0,
                        help="rate of the guidance windows' indices (5 for the published MAD files)")
    parser.add_argument("--fusion", choices=("sum", "product"), default="sum",
                        help="window score + model confidence, min-max normalised (sum), or their product")


def _add_window_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coarse-top-k", default="auto", metavar="auto|all|N",
                        help="windows of a long video the model reads: auto (default: every window up to 16, the "
                             "8 best of the first stage beyond; an architecture's own K, e.g. RGNet's; zero-shot: "
                             "every clip), all, or the N best")


def _window_choice(args):
    """The --coarse-top-k value as ground() takes it, or one error line before anything loads."""
    from .long_video import parse_coarse_top_k

    return parse_coarse_top_k(args.coarse_top_k, name="--coarse-top-k")


def _search_line(searches: list) -> str | None:
    """What the model read, over one or many predictions: "searched the 8 best of 97 windows (auto: ...)"."""
    searches = [s for s in searches if s is not None]
    if not searches:
        return None
    first = searches[0]
    if all((s.searched, s.total, s.rule) == (first.searched, first.total, first.rule) for s in searches):
        by = f"; by {first.first_stage}" if first.first_stage and first.searched < first.total else ""
        return f"{first.describe()} ({first.rule}{by})"
    read = sorted({s.searched for s in searches})
    total = sorted({s.total for s in searches})
    return (f"searched {read[0]}-{read[-1]} of {total[0]}-{total[-1]} windows per query "
            f"(--coarse-top-k {first.asked})")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTES = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _duration(text: str) -> float:
    """'30d', '12h', '45m', '90s' or plain seconds -> seconds."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhdw]?)\s*", str(text).lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 30d, 12h, 45m, 90s)")
    return float(match.group(1)) * _UNITS.get(match.group(2) or "s", 1)


def _size(text: str) -> int:
    """'2GB', '500MB', '1.5G', '800MiB' or plain bytes -> bytes."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _BYTES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 2GB, 500MB)")
    return int(float(match.group(1)) * _BYTES[match.group(2)])


def _grounder(args, **kwargs):
    from .pipeline import Grounder

    return Grounder.from_options(clip_weights=args.clip_weights, resume=args.resume, device=args.device,
                                 clip_model=args.clip_model, clip_len=args.clip_len, cache_dir=args.cache_dir,
                                 use_cache=not args.no_cache, max_duration=args.max_duration,
                                 slowfast_weights=args.slowfast_weights, **kwargs)


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
    """One bar per video source (named when the model reads several: ``clip.mp4 [slowfast]``)."""
    several = len(grounder.sources) > 1
    opened: list[_Bar] = []

    def bar_for(source: str) -> _Bar:
        for done in opened:
            done.close()
        opened.append(_Bar(f"{path.name} [{source}]" if several else path.name, bars))
        return opened[-1]

    try:
        return grounder.index(path, progress_for=bar_for)
    finally:
        for bar in opened:
            bar.close()  # before anything else is printed: an error line never shares the bar's line


def _describe_index(index) -> str:
    how = "from cache" if index.from_cache else f"indexed in {format_length(index.seconds)}"
    width = f", {index.features.shape[1]} values per clip from {len(index.sources)} sources" \
        if getattr(index, "sources", ()) else ""
    return (f"{printable(index.path)}: {format_length(index.duration)}, {index.info.fps:.2f} fps, "
            f"{index.n_clips} clips of {index.clip_len:g} s{width} ({how})")


def _print_prediction(pred, top_k: int) -> None:
    def hms(seconds: float) -> str:  # the app's format (univtg_core.formatting): hours on a video that has them
        return format_time(seconds, duration=pred.duration)

    print(f"\nQuery: {printable(pred.query)}  [{pred.mode}]")
    if pred.query_cut:
        reader = "the model" if pred.mode == "model" else "CLIP"
        print(f"  note: the query's text has {pred.query_tokens} tokens; {reader} read {pred.tokens_read} token "
              f"rows, cut as its training features were")
    print(f"  {'#':>2}  {'moment':<17}  {'seconds':<15}  {'score':>7}")
    for rank, m in enumerate(pred.moments[:top_k], 1):
        span = format_span(m.start, m.end, pred.duration)
        print(f"  {rank:>2}  {span:<17}  {f'{m.start:.1f}–{m.end:.1f}':<15}  {format_score(m.score):>7}")
    search = _search_line([pred.window_search])
    if search:
        print(f"  windows: {search}")
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
    from .weights import is_torchscript_archive

    if is_torchscript_archive(path):
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
    choice = _window_choice(args)
    _check_queries(args)
    _check_video(args, args.video)
    _check_resume(args)
    grounder = _grounder(args, top_k=args.top_k, nms_threshold=args.nms, summary_budget=args.summary_budget)
    index = _index_one(grounder, Path(args.video), _bars_wanted(args))
    print(_describe_index(index))
    predictions = [grounder.query(index, text=text, coarse_top_k=choice) for text in args.query]
    for image in args.query_image:
        # an unreadable image is a QueryError naming the file
        pred = grounder.query(index, image=image, coarse_top_k=choice)
        predictions.append(_relabel(pred, f"[image] {Path(image).name}"))
    lines = []
    for pred in predictions:
        _print_prediction(pred, args.top_k)
        record = {"vid": Path(args.video).name, **pred.to_dict()}
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


def run_predict_split(args) -> int:
    from .split_predict import SplitOptions, predict_split
    from .training.data import FeatureStore as FeatureReader
    from .training.data import infer_clip_length, load_jsonl

    choice = _window_choice(args)
    records = load_jsonl(args.jsonl)
    if not records:
        raise UniVTGError(f"{args.jsonl} holds no queries")
    if args.resume and not args.text_features:
        raise UniVTGError("a model reads query tokens: give --text-features DIR (the dataset's query features)")
    for path in [*args.features, args.text_features, args.sentence_features, args.guidance]:
        if path and not Path(path).exists():
            raise UniVTGError(f"not found: {path}")
    videos = FeatureReader(args.features, None, normalize_video=False, normalize_text=False)
    texts = FeatureReader([], args.text_features, normalize_video=False, normalize_text=False) \
        if args.text_features else None
    sentences = FeatureReader([], args.sentence_features, normalize_video=False, normalize_text=False) \
        if args.sentence_features else texts
    if args.resume is None and sentences is None:
        raise UniVTGError("zero-shot compares the clips with each query's sentence embedding: give "
                          "--text-features (with pooler_output) or --sentence-features")
    model = None
    if args.resume:
        from .models import load_model

        model = load_model(args.resume, device=args.device)
    clip_len = args.clip_len or (model.input_spec.clip_len if model is not None else None) or \
        infer_clip_length(records, videos)
    if clip_len is None:
        raise UniVTGError("cannot tell the clip length (no durations in the queries): pass --clip-len")
    guidance = None
    if args.guidance:
        from .guidance import read_guidance

        guidance = read_guidance(args.guidance, fps=args.guidance_fps)
    options = SplitOptions(clip_len=float(clip_len), text_field=args.text_field,
                           sentence_field=args.sentence_field or None, window=args.window, stride=args.stride,
                           coarse_top_k=choice, fusion=args.fusion, nms_threshold=args.nms,
                           top_k=args.top_k)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    bar = tqdm(total=len(records), desc="queries", unit="query", file=sys.stderr, disable=None)
    written, searches = 0, []
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for pred in predict_split(records, videos, texts, options, model=model, sentences=sentences,
                                      guidance=guidance, progress=lambda _done, _total: bar.update(1)):
                record = pred.to_dict()
                if args.no_saliency:
                    record.pop("pred_saliency_scores", None)
                handle.write(json.dumps(record) + "\n")
                written += 1
                searches.append(pred.window_search)
        tmp.replace(out)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    mode = "zero-shot" if model is None else model.architecture
    print(f"wrote {written} predictions ({mode}, clips of {clip_len:g} s) to {out}")
    search = _search_line(searches)
    if search:
        print(f"windows: {search}")
    return 0


def _open_store(args):
    from .indexing import store_root
    from .store import FeatureStore

    root = Path(args.store) if args.store else store_root(args.cache_dir)
    if args.store and not FeatureStore.is_store(root):
        raise UniVTGError(f"{root} is not a feature store")
    if not FeatureStore.is_store(root):
        return None, root
    return FeatureStore(root, create=False), root


def _human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def run_cache(args) -> int:
    import time

    store, root = _open_store(args)
    entries = store.list() if store is not None else []
    now = time.time()
    if args.cache_command == "list":
        print(f"feature store {root}: {len(entries)} entries, {_human_size(sum(e.nbytes for e in entries))}")
        if entries:
            print(f"  {'entry':<24} {'status':<9} {'rows':>13} {'size':>9} {'used':>5}  what")
        for e in entries:
            rows = f"{e.rows}/{e.total}" if e.status != "complete" and e.total else str(e.rows)
            meta = e.meta
            what = " ".join(str(x) for x in (meta.get("source"), meta.get("encoder"),
                                              f"{meta['clip_len']:g} s clips" if "clip_len" in meta else None) if x)
            print(f"  {e.name[:24]:<24} {e.status:<9} {rows:>13} {_human_size(e.nbytes):>9} "
                  f"{_age(now - e.used):>5}  {what}")
        return 0
    if store is None:
        print(f"feature store {root}: nothing to prune")
        return 0
    removed = store.prune(older_than=args.older_than, max_bytes=args.max_size,
                          partial_older_than=args.partial_older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"  {verb} {e.name} ({e.status}, {_human_size(e.nbytes)}, unused for {_age(now - e.used)})")
    left = [e for e in entries if e not in removed]
    print(f"{verb} {len(removed)} entries ({_human_size(sum(e.nbytes for e in removed))}); "
          f"{len(left)} left ({_human_size(sum(e.nbytes for e in left))})")
    return 0


_COMMANDS = {"predict": run_predict, "index": run_index, "predict-split": run_predict_split, "cache": run_cache}


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
            return _COMMANDS[args.command](args)
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
