"""`python main_gradio.py [flags]`: parse flags, load the model once, launch the page."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from pathlib import Path

logger = logging.getLogger("app")

DEFAULT_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_MAX_DURATION = 4 * 3600.0  # a feature film; a Space lowers it with --max-duration or $UNIVTG_MAX_DURATION


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _default_host() -> str:
    """0.0.0.0 inside a Hugging Face Space (its proxy must reach the app), loopback everywhere else."""
    return "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main_gradio.py",
        description="Web app: find moments, a saliency curve, highlights and a summary in a video.",
    )
    model = parser.add_argument_group("model")
    # A Space runs `python main_gradio.py` with no flags: its variables UNIVTG_RESUME / UNIVTG_CLIP_WEIGHTS
    # stand in for the two that matter there.
    model.add_argument("--resume", default=os.environ.get("UNIVTG_RESUME") or None, metavar="CKPT",
                       help="UniVTG checkpoint (or $UNIVTG_RESUME); without it the app runs in zero-shot mode "
                            "(CLIP similarity)")
    model.add_argument("--clip-weights", default=os.environ.get("UNIVTG_CLIP_WEIGHTS") or "openai",
                       metavar="openai|random|PATH",
                       help="CLIP weights (or $UNIVTG_CLIP_WEIGHTS): 'openai' (downloaded once, cached; the "
                            "default), 'random' (tests only: results are meaningless) or a local file")
    model.add_argument("--slowfast-weights", default=os.environ.get("UNIVTG_SLOWFAST_WEIGHTS") or None,
                       metavar="PATH",
                       help="SlowFast weights (or $UNIVTG_SLOWFAST_WEIGHTS) for checkpoints that read SlowFast "
                            "features (2818 wide: SlowFast + CLIP): PySlowFast's SLOWFAST_8x8_R50.pkl, a "
                            ".safetensors converted from it, or 'random' (tests only)")
    model.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default: %(default)s)")
    model.add_argument("--device", default=None, help="cuda, cpu, mps (default: the best one available)")
    model.add_argument("--cache-dir", default=None, help="where video features are cached "
                       "(default: $UNIVTG_CACHE_DIR or ~/.cache/univtg_core)")
    server = parser.add_argument_group("server")
    server.add_argument("--host", default=_default_host(),
                        help="address to bind (default: 127.0.0.1; 0.0.0.0 inside a Space)")
    server.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default: %(default)s)")
    server.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    server.add_argument("--max-duration", type=float, default=float(_env("UNIVTG_MAX_DURATION",
                                                                          str(DEFAULT_MAX_DURATION))),
                        metavar="SECONDS",
                        help="longest video accepted, or $UNIVTG_MAX_DURATION (default: %(default)g = 4 h; "
                             "0: no limit)")
    server.add_argument("--max-file-size", default=_env("UNIVTG_MAX_FILE_SIZE", "2gb"),
                        help="largest upload, e.g. 200mb or 2gb, or $UNIVTG_MAX_FILE_SIZE (default: %(default)s)")
    server.add_argument("--disk-budget", default=_env("UNIVTG_DISK_BUDGET", "20gb"),
                        help="what uploads and outputs may keep on disk in all, oldest removed first, or "
                             "$UNIVTG_DISK_BUDGET (default: %(default)s; 0: no limit)")
    server.add_argument("--client-budget", default=_env("UNIVTG_CLIENT_BUDGET", "4gb"),
                        help="uploads one client may keep, their oldest removed first, or $UNIVTG_CLIENT_BUDGET "
                             "(default: %(default)s; 0: no limit)")
    server.add_argument("--trust-proxy", action=argparse.BooleanOptionalAction,
                        default=bool(os.environ.get("SPACE_ID")),
                        help="tell clients apart by X-Forwarded-For (default: only inside a Space, whose proxy "
                             "sets it)")
    server.add_argument("--concurrency", type=int, default=1,
                        help="queries run at the same time, sharing one model (default: %(default)s)")
    server.add_argument("--queue-size", type=int, default=32,
                        help="queries waiting at most; more are refused (default: %(default)s)")
    server.add_argument("--examples-dir", default=str(DEFAULT_EXAMPLES),
                        help="folder with examples.json; an empty string shows none (default: the bundled examples)")
    model.add_argument("--coarse-top-k", default=_env("UNIVTG_COARSE_TOP_K", "auto"), metavar="auto|all|N",
                       help="the windows of a long video the model reads, the page's default (users change it in "
                            "Advanced options), or $UNIVTG_COARSE_TOP_K: auto (every window up to 16, the 8 best "
                            "beyond; an architecture's own K), all, or the N best (default: %(default)s)")
    page = parser.add_argument_group("page")
    page.add_argument("--nested-moments", choices=("fold", "drop", "keep"),
                      default=_env("UNIVTG_NESTED_MOMENTS", "fold"),
                      help="a moment inside (or around) a better-scored one: folded under it, dropped, or kept "
                           "as a row of its own, or $UNIVTG_NESTED_MOMENTS (default: %(default)s)")
    return parser


def _import_spaces() -> None:
    """On ZeroGPU `spaces` must be imported before torch touches CUDA; elsewhere it is simply absent."""
    try:
        import spaces  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        pass


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (containers, Spaces, test harnesses) like Ctrl-C: Gradio closes and session files go."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _own_temp_dir() -> Path | None:
    """Gradio keeps uploads and served copies under $GRADIO_TEMP_DIR (default: one folder shared by every
    Gradio app on the machine). The disk budget removes files there, so unless told otherwise the app uses
    a folder of its own, removed when it stops. Returns the folder it made (None: the caller's is used)."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    folder = Path(tempfile.mkdtemp(prefix="univtg-gradio-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .storage import parse_size

    try:
        limits = {name: parse_size(getattr(args, name))
                  for name in ("max_file_size", "disk_budget", "client_budget")}
    except ValueError as exc:
        parser.error(str(exc))
    from univtg_core import OptionError, parse_coarse_top_k

    try:
        coarse_top_k = str(parse_coarse_top_k(args.coarse_top_k, name="--coarse-top-k"))
    except OptionError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("app", "univtg_core"):  # our own progress at INFO; third-party chatter only when it matters
        logging.getLogger(ours).setLevel(logging.INFO)
    _import_spaces()
    # Examples whose query is only text leave the image empty on purpose; Gradio warns about any None.
    warnings.filterwarnings("ignore", message="Examples will be cached but not all input", category=UserWarning)

    from gradio.utils import get_cache_folder, get_upload_folder
    from starlette.middleware import Middleware

    from univtg_core import CheckpointError, EncoderWeightsError, Grounder, results_are_meaningful

    from .assets import load_assets
    from .handlers import PageOptions
    from .layout import build_demo, theme
    from .serving import ServerGuard
    from .session import SessionStore
    from .storage import DiskBudget

    max_duration = args.max_duration if args.max_duration and args.max_duration > 0 else None
    try:
        grounder = Grounder.from_options(clip_weights=args.clip_weights, resume=args.resume, device=args.device,
                                         clip_model=args.clip_model, cache_dir=args.cache_dir,
                                         max_duration=max_duration, slowfast_weights=args.slowfast_weights)
    except (CheckpointError, EncoderWeightsError) as exc:
        print(f"main_gradio.py: error: {exc}", file=sys.stderr)
        return 2
    logger.info("model ready: mode=%s, clip_len=%.2f s, meaningful results=%s", grounder.mode, grounder.clip_len,
                results_are_meaningful(grounder))

    own_temp = _own_temp_dir()
    uploads = Path(get_upload_folder())
    uploads.mkdir(parents=True, exist_ok=True)
    assets = load_assets()
    sessions = SessionStore()
    budget = DiskBudget([uploads, sessions.root], total_bytes=limits["disk_budget"],
                        per_client_bytes=limits["client_budget"])
    demo = build_demo(grounder, max_duration=max_duration, examples_dir=args.examples_dir or None,
                      sessions=sessions, assets=assets, budget=budget,
                      options=PageOptions(nested=args.nested_moments, coarse_top_k=coarse_top_k))
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    guard = Middleware(ServerGuard, served_roots=[uploads, Path(get_cache_folder()).resolve()], budget=budget,
                       max_upload_bytes=limits["max_file_size"], trust_forwarded=args.trust_proxy)
    _stop_on_sigterm()
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            max_file_size=limits["max_file_size"],
            # The file and upload routes go through ServerGuard (app/serving.py): only the app's own files
            # are served, uploads are held to the disk budget.
            app_kwargs={"middleware": [guard]},
            # Nothing beyond Gradio's own cache is served: it holds the uploads and copies of the files our
            # events return, each under an unguessable hash. Session folders are never served themselves
            # (app/session.py says why Gradio accepts the files returned from them).
            allowed_paths=[],
            # Runs would be replayed from files deleted when their session ends.
            run_history=False,
            show_error=True,
            theme=theme(),
            css=assets.css,
        )
    finally:
        sessions.destroy()
        if own_temp is not None:
            shutil.rmtree(own_temp, ignore_errors=True)
    return 0
