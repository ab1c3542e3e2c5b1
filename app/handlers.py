"""What the page's events do: answer a query (index, ground, build every output) and steer the player.

Model work goes through `univtg_core`'s public API only; what the page shows is built by `app.builders`.
Nothing here creates components: `app.layout` wires these functions to them.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from univtg_core import (
    Moment,
    OptionError,
    QueryError,
    UniVTGError,
    VideoReadError,
    VideoTooLongError,
    browser_playable,
    cut_clip,
    make_playable_copy,
    parse_coarse_top_k,
    probe_playback,
    read_frames_at,
    summary_spans,
    write_summary_video,
)

from . import builders, long_view
from .session import Session, SessionStore
from .storage import DiskBudget

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 300  # the text box's limit; the API enforces the same one
# The advanced option's choices (any other whole number is accepted too): auto is the core's rule.
WINDOW_CHOICES = ("auto", "all", "4", "8", "16", "32")
# How the progress bar names a video source when the model reads several (SlowFast + CLIP checkpoints).
SOURCE_LABELS = {"clip": "CLIP", "slowfast": "SlowFast"}  # the bar of each source a model reads


@dataclass(frozen=True)
class PageOptions:
    """How the page shows a result; `nested` is `builders.fold_nested`'s mode (the `--nested-moments` flag)."""

    nested: str = "fold"
    top_k: int = 10  # rows in the moments table
    shade_top: int = 3  # moments shaded on the curve
    summary_shown: int = 24  # summary points in the gallery and the summary video, at most
    max_query_chars: int = MAX_QUERY_CHARS
    coarse_top_k: str = "auto"  # the windows to search by default (`--coarse-top-k`); the user may change it


def gpu_decorator(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU` on ZeroGPU Spaces (the GPU is attached only while the function runs); a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


class QueryHandler:
    """Answers the queries of every user of one page with one shared `grounder` (see `univtg_core.Grounder`).

    What belongs to one browser session (its output folder) comes from `sessions` and lives in `gr.State`;
    `budget` (optional) pins the files a running query uses so that the disk budget never removes them.
    """

    def __init__(self, grounder: Any, sessions: SessionStore, gpu_seconds: int = 120,
                 options: PageOptions | None = None, budget: DiskBudget | None = None):
        self.grounder = grounder
        self.sessions = sessions
        self.options = options or PageOptions()
        self.budget = budget
        self._ground_on_device = gpu_decorator(gpu_seconds)(self._ground)

    def _ground(self, video: str, text: str, image: str | None, progress: Any = None,
                coarse_top_k: int | str = "auto") -> tuple[dict, Any, float]:
        """Index (or load the cached index) and query: the only work that wants an accelerator."""
        sources = tuple(getattr(self.grounder, "sources", ("clip",)))

        def report_for(source: str):
            """Each video source the model reads gets its own bar (named when there are several), with the
            time left from this run's rate and whether it resumed."""
            label = SOURCE_LABELS.get(source, source) if len(sources) > 1 else ""
            return long_view.IndexProgress(progress, label=label)

        index = self.grounder.index(video, progress_for=report_for)
        started = time.perf_counter()
        prediction = self.grounder.query(index, text=text or None, image=image, coarse_top_k=coarse_top_k)
        info = {
            "n_clips": index.n_clips,
            "duration": float(index.info.duration),
            "from_cache": bool(index.from_cache),
            "seconds": float(index.seconds),
        }
        return info, prediction, time.perf_counter() - started

    def check_windows(self, coarse_top_k) -> int | str:
        """The advanced option (auto, all or a whole number of windows), or one gr.Error before any work."""
        try:
            return parse_coarse_top_k(self.options.coarse_top_k if coarse_top_k in (None, "") else coarse_top_k,
                                      name="Windows to search")
        except OptionError as exc:
            raise _error(str(exc), "Windows to search") from exc

    def check_query(self, video, text, image) -> str:
        """The inputs as the API and the page both accept them, or one gr.Error about what to change."""
        if not video:
            raise _error("No video: upload one, or pick one of the examples.", "No video")
        text = (text or "").strip()
        if len(text) > self.options.max_query_chars:
            raise _error(f"The text query has {len(text)} characters; shorten it to at most "
                         f"{self.options.max_query_chars}.", "Query too long")
        if not text and not image:
            raise _error("The query is empty: type what to look for, or give an example image.", "Empty query")
        return text

    def answer(self, video, text, image, session: Session, progress, coarse_top_k=None) -> tuple:
        """Everything one query shows, as data (shared by the UI event, the API and the examples cache)."""
        text = self.check_query(video, text, image)
        windows = self.check_windows(coarse_top_k)
        video = session.original_of(video)
        logger.info("query on %s: text %s%s", builders.log_summary(Path(video).name, 60),
                    builders.log_summary(text), " + image" if image else "")
        pins = self.budget.pin(video, image) if self.budget is not None else _nothing()
        with pins:
            try:
                info, prediction, query_seconds = self._ground_on_device(video, text, image, progress, windows)
            except VideoTooLongError as exc:
                raise _error(f"This video is too long for this app: {_plain(exc, video, image)}",
                             "Video too long") from exc
            except VideoReadError as exc:
                raise _error(f"This file could not be read as a video: {_plain(exc, video, image)}",
                             "Unreadable video") from exc
            except QueryError as exc:
                raise _error(f"Query problem: {_plain(exc, video, image)}", "Query") from exc
            except UniVTGError as exc:
                raise _error(_plain(exc, video, image), "Error") from exc
            except Exception as exc:
                logger.exception("query failed")
                raise gr.Error(f"Something went wrong while grounding the query ({type(exc).__name__}); "
                               "the server log has the details.", print_exception=False) from exc
            outputs = self.outputs(video, text, image, prediction, info, query_seconds, session)
        notice = query_cut_notice(prediction)
        if notice:
            gr.Info(notice)
        if self.budget is not None:
            self.budget.enforce()
        return outputs

    def outputs(self, video: str, text: str, image: str | None, prediction: Any, info: dict,
                query_seconds: float, session: Session) -> tuple:
        """The page's outputs for one prediction, every file written once under a new name in `session`."""
        opts = self.options
        duration = float(prediction.duration)
        shown = builders.fold_nested(prediction.moments, opts.nested, tolerance=float(prediction.clip_len) / 4)
        summary = builders.pick_summary(prediction.summary, prediction.saliency, prediction.clip_len,
                                        opts.summary_shown)
        kind = builders.query_kind(text, image)
        result = builders.shown_result(prediction, shown, nested=opts.nested, kind=kind, summary_shown=summary)
        stem = f"{Path(video).stem}-{builders.slug(text, 'image-query')}"

        thumb_times = builders.moment_thumb_times(shown, opts.top_k)
        points = builders.gallery_points(prediction.highlight, summary, duration)
        frames = _frames(video, thumb_times + [t for t, _ in points])
        row_frames, point_frames = frames[: len(thumb_times)], frames[len(thumb_times):]
        thumbs = [builders.thumbnail_markdown(f, alt=f"moment {i + 1}") if f is not None else None
                  for i, f in enumerate(row_frames)]
        rows = builders.moment_rows(shown, duration, thumbs, opts.top_k)
        # Every point keeps its place (a grey tile where a frame could not be read): choosing item i plays
        # point i of the gallery. Tiles are files of our own, each written once (never a shared name).
        gallery = []
        for i, (frame, (_, caption)) in enumerate(zip(point_frames, points, strict=True)):
            data = builders.jpeg_bytes(frame if frame is not None else _blank_frame())
            gallery.append((str(session.write(f"point-{i}-{stem}", ".jpg", lambda p, d=data: p.write_bytes(d))),
                            caption))

        plot = self.plot(prediction, shown, None, session, stem)
        summary_video = _summary_video(video, prediction, summary, session, stem)
        downloads = _downloads(video, shown, result, session, stem) + ([summary_video] if summary_video else [])

        n_folded = len(result["folded_windows"])
        label = builders.query_label(text, Path(image).name if image else None)
        status = builders.status_line(label, kind, len(shown), n_folded, info, query_seconds,
                                      self.grounder.mode, builders.search_text(result.get("window_search")))
        curve = pd.DataFrame(builders.curve_points(prediction))  # the builders stay pandas-free
        return result, rows, plot, gallery, summary_video, downloads, status, curve

    def plot(self, prediction: Any, shown: Any, playing: tuple[float, float] | None, session: Session,
             stem: str = "video") -> str:
        spec = builders.curve_spec(prediction, self.options.shade_top, moments=shown, playing=playing)
        fig = builders.saliency_figure(spec)
        return str(session.write(f"saliency-{stem}", ".png", lambda p: builders.figure_png(fig, p)))

    # -- events -------------------------------------------------------------------------------------------

    def predict(self, video, text="", image=None, coarse_top_k=None, session=None, request: gr.Request = None,
                progress=gr.Progress()):  # noqa: B008
        """Ground a query in a video. Inputs: the video file, a text query (may be empty), an image (optional),
        the windows of a long video to search (auto, all or a number)."""
        session = self._session(session, request)
        return (*self.answer(video, text, image, session, progress, coarse_top_k), session)

    def predict_example(self, video, text, image, progress=gr.Progress()):  # noqa: B008
        return self.answer(video, text, image, self.sessions.open("examples"), progress)[:-1]  # not the curve

    def end_session(self, request: gr.Request) -> None:
        """The tab was closed: remove its files now rather than when its state expires."""
        self.sessions.close_hash(_session_hash(request))

    def _session(self, session: Any, request: gr.Request | None) -> Session:
        return session if isinstance(session, Session) else self.sessions.open(_session_hash(request))

    def prepare_player(self, video, session=None, request: gr.Request = None,
                       progress=gr.Progress()):  # noqa: B008
        """A new upload: show it in the player (a browser-playable copy when browsers cannot play it), and
        clear the results of the previous video. An unreadable file is left to the query to report once."""
        session = self._session(session, request)
        cleared = _cleared_results()
        if not video:
            return (None, session, *cleared)
        return (self.playable(video, session, progress), session, *cleared)

    def playable(self, video: str, session: Session, progress: Any = None) -> str:
        """`video`, or a browser-playable copy of it made with progress (the original keeps its features)."""
        try:
            probe = probe_playback(video)
        except (UniVTGError, OSError) as exc:
            logger.info("upload not probed (%s): the query will say why", exc)
            return video
        playable, why = browser_playable(probe)
        if playable:
            return video

        def report(done: float, total: float) -> None:
            if progress is not None and total > 0:
                progress(done / total, desc=f"Making a browser-playable copy ({why}): "
                                            f"{builders.format_length(done)} of {builders.format_length(total)}")

        pins = self.budget.pin(video) if self.budget is not None else _nothing()
        try:
            with pins:
                copy = session.write(f"playable-{Path(video).stem}", ".mp4",
                                     lambda p: make_playable_copy(video, p, progress=report,
                                                                  duration=probe.duration or None))
        except UniVTGError as exc:
            logger.warning("no playable copy of %s: %s", Path(video).name, exc)
            gr.Warning("This video cannot be shown in the player here; queries on it still work.")
            return video
        session.remember_original(copy, video)
        return str(copy)

    def cue_top(self, result: dict | None, session=None, request: gr.Request = None):
        """After an answer: cue the player at the top moment, mark it on the curve, label the summary player."""
        top = _windows(result)[:1]
        label = summary_note(result)
        if not top:
            return gr.skip(), gr.skip(), gr.skip(), label
        return (*self._cue(result, top[0][0], top[0][1], self._session(session, request), play=False), label)

    def cue_example(self, video, text, image, result: dict | None, session=None, request: gr.Request = None):
        """An example was chosen: show its video in the player at the top moment, its interactive curve, and
        a status line without the timings of the stored answer's first run."""
        session = self._session(session, request)
        top = _windows(result)[:1]
        player_video = self.playable(video, session) if video else None
        label = summary_note(result)
        curve = pd.DataFrame(builders.curve_points(result_view(result))) if result else None
        status = example_status(result, text, image)
        if not top or not player_video:
            return gr.Video(value=player_video), gr.skip(), gr.skip(), label, curve, status
        _position, segment, plot = self._cue(result, top[0][0], top[0][1], session, play=False)
        return gr.Video(value=player_video, playback_position=segment[0]), segment, plot, label, curve, status

    def pick_row(self, result: dict | None, session=None, evt: gr.SelectData = None, request: gr.Request = None):
        windows = _windows(result)
        row = evt.index[0] if evt is not None and isinstance(evt.index, (list, tuple)) else getattr(evt, "index", None)
        if row is None or not 0 <= int(row) < len(windows):
            return gr.skip(), gr.skip(), gr.skip()
        start, end = windows[int(row)][:2]
        return self._cue(result, start, end, self._session(session, request))

    def pick_point(self, result: dict | None, session=None, evt: gr.SelectData = None,
                   request: gr.Request = None):
        if not result:
            return gr.skip(), gr.skip(), gr.skip()
        points = [result.get("pred_highlight"), *(result.get("summary_shown") or [])]
        i = evt.index if evt is not None and isinstance(evt.index, int) else None
        if i is None or not 0 <= i < len(points) or points[i] is None:
            return gr.skip(), gr.skip(), gr.skip()
        half = float(result.get("clip_len") or 2.0) / 2
        return self._cue(result, float(points[i]) - half, float(points[i]) + half, self._session(session, request))

    def pick_range(self, result: dict | None, session=None, evt: gr.SelectData = None,
                   request: gr.Request = None):
        index = getattr(evt, "index", None)
        if not result or not isinstance(index, (list, tuple)) or len(index) < 2:
            return gr.skip(), gr.skip(), gr.skip()
        return self._cue(result, min(index[:2]), max(index[:2]), self._session(session, request))

    def _cue(self, result: dict, start: float, end: float, session: Session, play: bool = True):
        """Player position, the segment for the player script ([start, end, table row, play?]) and the curve
        re-drawn with that segment marked and zoomed."""
        segment = [*_segment(result, start, end), bool(play)]
        view = result_view(result)
        plot = self.plot(view, view.moments, (segment[0], segment[1]), session)
        return gr.Video(playback_position=segment[0]), segment, plot


def _cleared_results() -> tuple:
    """Empty values for every result output: a new video's page shows nothing of the previous one."""
    return (None, [], None, [], None, [], "", None, "")


def _nothing():
    import contextlib

    return contextlib.nullcontext()


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^\s'\"/:;,()]+)+/([^\s'\"/:;,()]+)")


def _plain(exc: Exception, video: str, image: str | None = None) -> str:
    """The core's message for a user: file names instead of server paths, one full stop at the end."""
    message = str(exc)
    for path in (video, image):
        if path:
            message = message.replace(str(path), Path(path).name)
    message = _ABSOLUTE_PATH.sub(r"\1", message).strip()
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


def _summary_video(video: str, prediction: Any, summary: tuple[float, ...], session: Session,
                   stem: str) -> str | None:
    """The shown summary points as one mp4 for the player under the gallery (None: nothing to show)."""
    if not summary_spans(summary, float(prediction.clip_len), float(prediction.duration)):
        return None
    shown = replace(prediction, summary=summary) if hasattr(prediction, "__dataclass_fields__") else prediction
    try:
        return str(session.write(f"summary-{stem}", ".mp4", lambda p: write_summary_video(video, shown, p)))
    except Exception as exc:  # noqa: BLE001 - a summary is optional: say so, keep the rest
        logger.warning("summary clip failed: %s", exc)
        gr.Warning("The summary video could not be made; the other results are complete.")
        return None


def example_status(result: dict | None, text: str | None, image: str | None) -> Any:
    """The status line of an example's stored answer: the query it ran, what came back (not when)."""
    if not result:
        return gr.skip()
    text = (text or "").strip()
    return builders.status_line(builders.query_label(text, Path(image).name if image else None),
                                result.get("query_kind") or builders.query_kind(text, image),
                                len(_windows(result)), len(result.get("folded_windows") or []), None, 0.0,
                                str(result.get("mode") or ""), builders.search_text(result.get("window_search")))
def query_cut_notice(prediction: Any) -> str | None:
    """The short notice for a text longer than the model reads (its official extractor's cut), else None."""
    if not getattr(prediction, "query_cut", False):
        return None
    reader = "The model" if prediction.mode == "model" else "CLIP"
    return (f"Query shortened: its text has {prediction.query_tokens} tokens; {reader} read "
            f"{prediction.tokens_read} token rows, cut as its training features were.")


def summary_note(result: dict | None) -> str:
    """The line over the summary player: how many points it plays and for how long (from the shown result)."""
    result = result or {}
    shown = list(result.get("summary_shown") or [])
    spans = summary_spans(shown, float(result.get("clip_len") or 2.0), float(result.get("duration") or 0.0))
    if not result:
        return ""
    return builders.summary_caption(len(shown), len(result.get("pred_summary") or []), sum(e - s for s, e in spans))


def _downloads(video: str, shown: list, result: dict, session: Session, stem: str) -> list[str]:
    """The JSON and the top moment as an mp4 (the summary mp4 is added by the caller); a clip that fails is
    left out."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    files = [str(session.write(f"predictions-{stem}", ".json", lambda p: p.write_text(text, encoding="utf-8")))]
    if shown:
        top = shown[0].moment
        try:
            files.append(str(session.write(f"top-moment-{stem}", ".mp4",
                                           lambda p: cut_clip(video, p, top.start, top.end))))
        except Exception as exc:  # noqa: BLE001 - a download is optional: say so, keep the rest
            logger.warning("top-moment clip failed: %s", exc)
            gr.Warning("The top-moment clip could not be cut; the other results are complete.")
    return files


# --------------------------------------------------------------------------------------------------------
# The player: what the result JSON on the page says about where to seek.


def _windows(result: dict | None) -> list:
    return list((result or {}).get("pred_relevant_windows") or [])


def _segment(result: dict | None, start: float, end: float) -> list[float]:
    """[start, end, row]: the stretch to play, inside the video, and the table row holding it (-1: none)."""
    duration = float((result or {}).get("duration") or end)
    start = max(0.0, min(float(start), duration))
    end = max(start, min(float(end), duration))
    middle = (start + end) / 2
    row = next((i for i, w in enumerate(_windows(result)) if w[0] - 1e-6 <= middle <= w[1] + 1e-6), -1)
    return [round(start, 3), round(end, 3), row]


def result_view(result: dict) -> Any:
    """The result JSON as the prediction-like object the curve builders take (what the page holds)."""
    moments = tuple(Moment(float(s), float(e), float(c)) for s, e, c in _windows(result))
    return SimpleNamespace(
        moments=moments,
        saliency=np.asarray(result.get("pred_saliency_scores") or [], dtype=np.float64),
        clip_len=float(result.get("clip_len") or 2.0),
        duration=float(result.get("duration") or 0.0),
        highlight=float(result.get("pred_highlight") or 0.0),
        summary=tuple(float(t) for t in result.get("pred_summary") or []),
    )
