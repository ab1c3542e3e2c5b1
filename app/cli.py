"""`python main_gradio.py [flags]`: parse flags, load the model once, launch the page."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

logger = logging.getLogger("app")

DEFAULT_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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
    server.add_argument("--max-duration", type=float, default=600.0, metavar="SECONDS",
                        help="longest video accepted (default: %(default)g; 0: no limit)")
    server.add_argument("--max-file-size", default="200mb",
                        help="largest upload, e.g. 200mb or 1gb (default: %(default)s)")
    server.add_argument("--concurrency", type=int, default=1,
                        help="queries run at the same time, sharing one model (default: %(default)s)")
    server.add_argument("--queue-size", type=int, default=32,
                        help="queries waiting at most; more are refused (default: %(default)s)")
    server.add_argument("--examples-dir", default=str(DEFAULT_EXAMPLES),
                        help="folder with examples.json; an empty string shows none (default: the bundled examples)")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("app", "univtg_core"):  # our own progress at INFO; third-party chatter only when it matters
        logging.getLogger(ours).setLevel(logging.INFO)
    _import_spaces()
    # Examples whose query is only text leave the image empty on purpose; Gradio warns about any None.
    warnings.filterwarnings("ignore", message="Examples will be cached but not all input", category=UserWarning)

    from univtg_core import CheckpointError, EncoderWeightsError, Grounder, results_are_meaningful

    from .assets import load_assets
    from .layout import build_demo, theme
    from .session import SessionStore

    max_duration = args.max_duration if args.max_duration and args.max_duration > 0 else None
    try:
        grounder = Grounder.from_options(clip_weights=args.clip_weights, resume=args.resume, device=args.device,
                                         clip_model=args.clip_model, cache_dir=args.cache_dir,
                                         max_duration=max_duration)
    except (CheckpointError, EncoderWeightsError) as exc:
        print(f"main_gradio.py: error: {exc}", file=sys.stderr)
        return 2
    logger.info("model ready: mode=%s, clip_len=%.2f s, meaningful results=%s", grounder.mode, grounder.clip_len,
                results_are_meaningful(grounder))

    assets = load_assets()
    sessions = SessionStore()
    demo = build_demo(grounder, max_duration=max_duration, examples_dir=args.examples_dir or None,
                      sessions=sessions, assets=assets)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    _stop_on_sigterm()
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            max_file_size=args.max_file_size,
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
    return 0
