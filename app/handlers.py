"""What the page's events do: answer a query (index, ground, build every output) and steer the player.

Model work goes through `univtg_core`'s public API only; what the page shows is built by `app.builders`.
Nothing here creates components: `app.layout` wires these functions to them.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from univtg_core import (
    QueryError,
    UniVTGError,
    VideoReadError,
    VideoTooLongError,
    cut_clip,
    read_frames_at,
    write_summary_video,
)

from . import builders
from .session import Session, SessionStore

logger = logging.getLogger(__name__)

TOP_K = 10  # rows in the moments table
SHADE_TOP = 3  # moments shaded on the curve


def gpu_decorator(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU` on ZeroGPU Spaces (the GPU is attached only while the function runs); a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


class QueryHandler:
    """Answers the queries of every user of one page with one shared `grounder` (see `univtg_core.Grounder`).

    What belongs to one browser session (its output folder) comes from `sessions` and lives in `gr.State`.
    """

    def __init__(self, grounder: Any, sessions: SessionStore, gpu_seconds: int = 120):
        self.grounder = grounder
        self.sessions = sessions
        self._ground_on_device = gpu_decorator(gpu_seconds)(self._ground)

    def _ground(self, video: str, text: str, image: str | None, progress: Any = None) -> tuple[dict, Any, float]:
        """Index (or load the cached index) and query: the only work that wants an accelerator."""

        def report(done: int, total: int) -> None:
            if progress is not None and total:
                progress((done, total), desc=f"Encoding clips {done}/{total}", unit="clips")

        index = self.grounder.index(video, progress=report)
        started = time.perf_counter()
        prediction = self.grounder.query(index, text=text or None, image=image)
        info = {
            "n_clips": index.n_clips,
            "duration": float(index.info.duration),
            "from_cache": bool(index.from_cache),
            "seconds": float(index.seconds),
        }
        return info, prediction, time.perf_counter() - started

    def answer(self, video, text, image, session: Session, progress) -> tuple:
        """Everything one query shows, as data (shared by the UI event, the API and the examples cache)."""
        if not video:
            raise gr.Error("No video: upload one, or pick one of the examples below.", title="No video")
        text = (text or "").strip()
        if not text and not image:
            raise gr.Error("The query is empty: type what to look for, or give an example image.",
                           title="Empty query")
        try:
            info, prediction, query_seconds = self._ground_on_device(video, text, image, progress)
        except VideoTooLongError as exc:
            raise _error(f"This video is too long for this app: {_plain(exc, video)}", "Video too long") from exc
        except VideoReadError as exc:
            raise _error(f"This file could not be read as a video: {_plain(exc, video)}", "Unreadable video") \
                from exc
        except QueryError as exc:
            raise _error(f"Query problem: {_plain(exc, video)}", "Query") from exc
        except UniVTGError as exc:
            raise _error(_plain(exc, video), "Error") from exc
        except Exception as exc:
            logger.exception("query failed")
            raise gr.Error(f"Something went wrong while grounding the query ({type(exc).__name__}); "
                           "the server log has the details.") from exc

        result = prediction.to_dict()
        duration = float(prediction.duration)
        stem = f"{Path(video).stem}-{builders.slug(text, 'image-query')}"

        thumb_times = builders.moment_thumb_times(prediction.moments, TOP_K)
        points = builders.gallery_points(prediction.highlight, prediction.summary, duration)
        frames = _frames(video, thumb_times + [t for t, _ in points])
        row_frames, point_frames = frames[: len(thumb_times)], frames[len(thumb_times) :]
        thumbs = [builders.thumbnail_markdown(f, alt=f"moment {i + 1}") if f is not None else None
                  for i, f in enumerate(row_frames)]
        rows = builders.moment_rows(prediction.moments, duration, thumbs, TOP_K)
        # Every point keeps its place (a grey tile where a frame could not be read): choosing item i plays
        # point i of the JSON.
        gallery = [(f if f is not None else _blank_frame(), caption)
                   for f, (_, caption) in zip(point_frames, points, strict=True)]

        plot_path = session.new_path(f"{stem}-saliency", ".png")
        builders.figure_png(builders.saliency_figure(builders.curve_spec(prediction, SHADE_TOP)), plot_path)
        downloads = _downloads(video, prediction, result, session, stem)

        status = _status_line(info, query_seconds, self.grounder.mode, len(prediction.moments))
        curve = pd.DataFrame(builders.curve_points(prediction))  # the builders stay pandas-free
        return result, rows, str(plot_path), gallery, downloads, status, curve

    def predict(self, video, text, image, session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """Ground a query in a video. Inputs: video file, text query, image query (or None)."""
        session = session if isinstance(session, Session) else self.sessions.open(_session_hash(request))
        return (*self.answer(video, text, image, session, progress), session)

    def predict_example(self, video, text, image, progress=gr.Progress()):  # noqa: B008
        return self.answer(video, text, image, self.sessions.open("examples"), progress)

    def end_session(self, request: gr.Request) -> None:
        """The tab was closed: remove its files now rather than when its state expires."""
        self.sessions.close_hash(_session_hash(request))


def _plain(exc: Exception, video: str) -> str:
    """The core's message for a user: their file's name instead of the server's upload path, one full stop."""
    message = str(exc).replace(str(video), Path(video).name).strip()
    return message.rstrip(".") + "."


def _error(message: str, title: str) -> gr.Error:
    """A user-facing error; the message may quote a file name and gr.Error renders HTML, so escape <, >, &."""
    return gr.Error(html.escape(message, quote=False), title=title, print_exception=False)


def _blank_frame() -> np.ndarray:
    return np.full((90, 160, 3), 200, dtype=np.uint8)


def _session_hash(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _frames(video: str, seconds: list[float]) -> list[Any]:
    """Thumbnails at the given times; a frame that cannot be read becomes None instead of failing the query."""
    if not seconds:
        return []
    try:
        frames = list(read_frames_at(video, seconds, max_side=320))
    except UniVTGError as exc:
        logger.warning("thumbnails unavailable: %s", exc)
        return [None] * len(seconds)
    return frames + [None] * (len(seconds) - len(frames))


def _downloads(video: str, prediction: Any, result: dict, session: Session, stem: str) -> list[str]:
    """The JSON, the top moment as an mp4 and the summary as one mp4; a clip that fails is left out."""
    files = []
    json_path = session.new_path(f"{stem}-predictions", ".json")
    json_path.write_text(json.dumps(result, indent=2))
    files.append(str(json_path))
    top = prediction.moments[0] if prediction.moments else None
    if top is not None:
        clip_path = session.new_path(f"{stem}-top-moment", ".mp4")
        try:
            cut_clip(video, clip_path, top.start, top.end)
            files.append(str(clip_path))
        except Exception as exc:  # a download is optional: say so, keep the rest
            logger.warning("top-moment clip failed: %s", exc)
            gr.Warning("The top-moment clip could not be cut; the other results are complete.")
    if prediction.summary:
        try:
            summary = write_summary_video(video, prediction, session.new_path(f"{stem}-summary", ".mp4"))
            if summary is not None:
                files.append(str(summary))
        except Exception as exc:
            logger.warning("summary clip failed: %s", exc)
            gr.Warning("The summary video could not be made; the other results are complete.")
    return files


def _status_line(info: dict, query_seconds: float, mode: str, n_moments: int) -> str:
    clips = f"{info['n_clips']} clips, {builders.format_duration(info['duration'])} of video"
    if info["from_cache"]:
        indexed = f"**Index:** cached features ({clips}), loaded in {info['seconds']:.2f} s"
    else:
        indexed = f"**Indexed** {clips} in {builders.format_duration(info['seconds'])}"
    moments = f"{n_moments} moment" + ("" if n_moments == 1 else "s")
    return f"{indexed} · **query:** {query_seconds * 1000:.0f} ms · {moments} · mode: {mode}"


# --------------------------------------------------------------------------------------------------------
# The player: UI-only events that cue it at a moment, a gallery point or a dragged range of the curve.


def _segment(result: dict | None, start: float, end: float) -> list[float]:
    duration = float((result or {}).get("duration") or end)
    start = max(0.0, min(float(start), duration))
    return [round(start, 3), round(max(start, min(float(end), duration)), 3)]


def seek_top(result: dict | None):
    windows = (result or {}).get("pred_relevant_windows") or []
    if not windows:
        return gr.skip()
    return gr.Video(playback_position=float(windows[0][0]))


def pick_row(result: dict | None, evt: gr.SelectData):
    windows = (result or {}).get("pred_relevant_windows") or []
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if row is None or not 0 <= int(row) < len(windows):
        return gr.skip(), gr.skip()
    start, end = windows[int(row)][:2]
    return gr.Video(playback_position=float(start)), _segment(result, start, end)


def pick_point(result: dict | None, evt: gr.SelectData):
    if not result:
        return gr.skip(), gr.skip()
    points = [result.get("pred_highlight")] + list(result.get("pred_summary") or [])
    i = evt.index if isinstance(evt.index, int) else None
    if i is None or not 0 <= i < len(points) or points[i] is None:
        return gr.skip(), gr.skip()
    half = float(result.get("clip_len") or 2.0) / 2
    segment = _segment(result, float(points[i]) - half, float(points[i]) + half)
    return gr.Video(playback_position=segment[0]), segment


def pick_range(result: dict | None, evt: gr.SelectData):
    index = evt.index
    if not result or not isinstance(index, (list, tuple)) or len(index) < 2:
        return gr.skip(), gr.skip()
    segment = _segment(result, min(index[:2]), max(index[:2]))
    return gr.Video(playback_position=segment[0]), segment
