"""The Gradio page: layout and events. Model work goes through `univtg_core`; pictures through `app.builders`.

`build_demo` builds everything from its arguments and nothing happens at import. One `Grounder` is shared
by every user; what belongs to one browser session (its output folder, its last result) lives in `gr.State`.
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
import pandas as pd

from univtg_core.errors import QueryError, UniVTGError, VideoReadError, VideoTooLongError

from . import builders
from .session import Session, SessionStore

logger = logging.getLogger(__name__)

TOP_K = 10  # rows in the moments table
SHADE_TOP = 3  # moments shaded on the curve

# Plays the chosen moment from its start and pauses at its end. The seek itself comes from the Python side
# (gr.Video(playback_position=...)); setting currentTime again here covers clicking the same row twice.
PLAY_SEGMENT_JS = """
(segment) => {
  const video = document.querySelector('#player video');
  if (!video || !segment || segment.length < 2) return;
  const [start, end] = segment;
  if (video._univtgStop) video.removeEventListener('timeupdate', video._univtgStop);
  const stop = () => {
    if (video.currentTime >= end - 0.05) {
      video.pause();
      video.removeEventListener('timeupdate', stop);
      video._univtgStop = null;
    }
  };
  video._univtgStop = stop;
  const go = () => {
    if (Math.abs(video.currentTime - start) > 0.2) video.currentTime = start;
    video.addEventListener('timeupdate', stop);
    const playing = video.play();
    if (playing && playing.catch) playing.catch(() => {});
  };
  if (video.readyState >= 1) go(); else video.addEventListener('loadedmetadata', go, { once: true });
}
"""

CSS = """
#banner-random { background: #fef2f2; border: 1px solid #fca5a5; color: #991b1b; border-radius: 8px;
  padding: 8px 14px; font-weight: 600; }
#banner-mode { background: #eff6ff; border: 1px solid #bfdbfe; color: #1e3a8a; border-radius: 8px;
  padding: 8px 14px; }
#status { min-height: 1.5em; font-size: 0.92em; color: var(--body-text-color-subdued); }
#moments img { max-height: 54px; border-radius: 4px; display: block; }
#points .grid-container { grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; }
#points .thumbnail-item { aspect-ratio: 16 / 10; height: auto; }
#points .grid-wrap { min-height: 0 !important; max-height: 300px; }
#points .caption-label { max-width: 94%; font-size: 0.78em; padding: 2px 6px; }
#app-title h1 { margin-bottom: 0; }
#app-title p { margin-top: 4px; color: var(--body-text-color-subdued); }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="blue", secondary_hue="orange", neutral_hue="slate")


def gpu_decorator(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU` on ZeroGPU Spaces (the GPU is attached only while the function runs); a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def _limit_text(max_duration: float | None) -> str:
    if not max_duration:
        return ""
    return f" Videos up to {builders.format_duration(max_duration)}."


def _banners(grounder: Any) -> None:
    if getattr(grounder.encoder, "is_random", False):
        gr.Markdown(
            "⚠️ **Random CLIP weights (`--clip-weights random`): results are meaningless.** This mode is for "
            "tests; image queries still find frames of the same colour.",
            elem_id="banner-random",
        )
    if grounder.mode == "zero-shot":
        gr.Markdown(
            "**Zero-shot mode:** no UniVTG checkpoint was loaded (start with `--resume CKPT` for the trained "
            "model). Moments come from CLIP similarity between the query and each clip.",
            elem_id="banner-mode",
        )
    else:
        gr.Markdown(
            f"**UniVTG model loaded** · clips of {grounder.clip_len:g} s.",
            elem_id="banner-mode",
        )


def build_demo(
    grounder: Any,
    max_duration: float | None = None,
    examples_dir: str | Path | None = None,
    sessions: SessionStore | None = None,
    gpu_seconds: int = 120,
) -> gr.Blocks:
    """The whole page around one shared `grounder` (see `univtg_core.Grounder`).

    `max_duration` is only shown to the user (the grounder enforces it); `examples_dir` holds
    `examples.json` and its files; `sessions` owns the per-session output folders.
    """
    sessions = sessions or SessionStore()
    examples = load_examples(examples_dir) if examples_dir else []

    @gpu_decorator(gpu_seconds)
    def ground_on_device(video: str, text: str, image: str | None, progress: Any = None) -> tuple[dict, Any, float]:
        """Index (or load the cached index) and query: the only work that wants an accelerator."""

        def report(done: int, total: int) -> None:
            if progress is not None and total:
                progress((done, total), desc=f"Encoding clips {done}/{total}", unit="clips")

        index = grounder.index(video, progress=report)
        started = time.perf_counter()
        prediction = grounder.query(index, text=text or None, image=image)
        info = {
            "n_clips": index.n_clips,
            "duration": float(index.info.duration),
            "from_cache": bool(index.from_cache),
            "seconds": float(index.seconds),
        }
        return info, prediction, time.perf_counter() - started

    def answer(video, text, image, session: Session, progress) -> tuple:
        """Everything one query shows, as data (shared by the UI event, the API and the examples cache)."""
        if not video:
            raise gr.Error("No video: upload one, or pick one of the examples below.", title="No video")
        text = (text or "").strip()
        if not text and not image:
            raise gr.Error("The query is empty: type what to look for, or give an example image.",
                           title="Empty query")
        try:
            info, prediction, query_seconds = ground_on_device(video, text, image, progress)
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

        result = prediction.to_json()
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

        session.video, session.result = video, result
        status = _status_line(info, query_seconds, grounder.mode, len(prediction.moments))
        curve = pd.DataFrame(builders.curve_points(prediction))  # the builders stay pandas-free
        return result, rows, str(plot_path), gallery, downloads, status, curve

    def predict(video, text, image, session, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """Ground a query in a video. Inputs: video file, text query, image query (or None)."""
        session = session if isinstance(session, Session) else sessions.open(_session_hash(request))
        return (*answer(video, text, image, session, progress), session)

    def predict_example(video, text, image, progress=gr.Progress()):  # noqa: B008
        return answer(video, text, image, sessions.open("examples"), progress)

    with gr.Blocks(title="UniVTG · find moments in a video", analytics_enabled=False,
                   delete_cache=(3600, 6 * 3600)) as demo:
        session_state = gr.State(None, time_to_live=6 * 3600, delete_callback=sessions.close)
        segment = gr.JSON(visible=False)  # [start, end] of what the player should play next (UI only)

        gr.Markdown(
            "# UniVTG · find moments in a video\n"
            "Upload a video, describe a moment in words or with an example image, and get the best moments, "
            "the saliency curve, highlights and a short summary." + _limit_text(max_duration),
            elem_id="app-title",
        )
        _banners(grounder)

        # Results first (not yet placed) so the examples in the left column can name them as outputs.
        table = gr.Dataframe(
            headers=builders.TABLE_HEADERS,
            datatype=builders.TABLE_DATATYPES,
            label="Top moments (choose a row to play it)",
            interactive=False,
            wrap=True,
            max_height=330,
            elem_id="moments",
            column_widths=["7%", "13%", "13%", "14%", "13%", "40%"],
            render=False,
        )
        plot = gr.Image(label="Saliency over the video", show_label=False, type="filepath", interactive=False,
                        elem_id="saliency", buttons=["download", "fullscreen"], render=False)
        curve = gr.LinePlot(x="time", y="saliency", x_title="time (s)", y_title="saliency", height=240,
                            elem_id="curve", label="Saliency per clip", render=False)
        gallery = gr.Gallery(label="Highlight and summary points (choose one to play it)", columns=6, height="auto",
                             object_fit="cover", elem_id="points", format="jpeg", allow_preview=False,
                             render=False)
        downloads = gr.File(label="Downloads: predictions (JSON), top moment (mp4), summary (mp4)",
                            file_count="multiple", interactive=False, elem_id="downloads", render=False)
        result_json = gr.JSON(label="Predictions", elem_id="result-json", render=False)
        status = gr.Markdown("", elem_id="status", render=False)
        data_outputs = [result_json, table, plot, gallery, downloads, status, curve]

        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360):
                player = gr.Video(label="Video", sources=["upload"], elem_id="player", height=340,
                                  include_audio=True)
                text = gr.Textbox(label="Text query", placeholder="e.g. a person opens the door  (Enter to search)",
                                  lines=1, max_lines=2, max_length=300, elem_id="query-text")
                image = gr.Image(label="Example image (optional)", type="filepath", height=150,
                                 sources=["upload", "clipboard"], elem_id="query-image")
                with gr.Row():
                    submit = gr.Button("Find moments", variant="primary", elem_id="submit")
                    gr.ClearButton(value="Clear query", components=[text, image])
                status.render()
                if examples:
                    gr.Examples(
                        examples=[[e["video"], e["text"], e["image"]] for e in examples],
                        example_labels=[e["label"] for e in examples],
                        inputs=[player, text, image],
                        outputs=data_outputs,
                        fn=predict_example,
                        # Cached so that a Space answers examples at once. "lazy" caches each example on
                        # its first use, shared by all users from then on, so start-up does not wait for
                        # every example to be indexed ("eager" would, for minutes on a CPU Space).
                        cache_examples=True,
                        cache_mode="lazy",
                        label="Examples: bundled videos with queries",
                        examples_per_page=8,
                    )
            with gr.Column(scale=7, min_width=420):
                table.render()
                with gr.Tabs():
                    with gr.Tab("Saliency curve"):
                        plot.render()
                    with gr.Tab("Interactive curve (drag a range to play it)"):
                        curve.render()
                gallery.render()
                downloads.render()
                with gr.Accordion("Predictions as JSON (the core's format)", open=False):
                    result_json.render()

        event = gr.on(
            triggers=[submit.click, text.submit],
            fn=predict,
            inputs=[player, text, image, session_state],
            outputs=[*data_outputs, session_state],
            api_name="predict",
            show_progress_on=[status, table],
            concurrency_id="model",  # every query shares the queue's limit on the one model
        )
        # UI only, kept out of the API and out of the model's queue (they are instant): cue the player at the
        # top moment once the answer is there; play a chosen row, gallery point or dragged range.
        ui_only = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
        event.success(_seek_top, inputs=[result_json], outputs=[player], **ui_only)
        for source, pick in ((table, _pick_row), (gallery, _pick_point), (curve, _pick_range)):
            source.select(pick, inputs=[result_json], outputs=[player, segment], **ui_only).then(
                None, inputs=[segment], js=PLAY_SEGMENT_JS, **ui_only
            )

        def end_session(request: gr.Request) -> None:
            """The tab was closed: remove its files now rather than when its state expires."""
            sessions.close_hash(_session_hash(request))

        demo.unload(end_session)
    return demo


def _plain(exc: Exception, video: str) -> str:
    """The core's message for a user: their file's name instead of the server's upload path, one full stop."""
    message = str(exc).replace(str(video), Path(video).name).strip()
    return message.rstrip(".") + "."


def _error(message: str, title: str) -> gr.Error:
    """A user-facing error; the message may quote a file name and gr.Error renders HTML, so escape <, >, &."""
    return gr.Error(html.escape(message, quote=False), title=title, print_exception=False)


def _blank_frame() -> Any:
    import numpy as np

    return np.full((90, 160, 3), 200, dtype=np.uint8)


def _session_hash(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _frames(video: str, seconds: list[float]) -> list[Any]:
    """Thumbnails at the given times; a frame that cannot be read becomes None instead of failing the query."""
    from univtg_core.video import read_frames_at

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
    from univtg_core.media import concat_clips, cut_clip

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
    spans = builders.summary_spans(prediction.summary, prediction.clip_len, prediction.duration)
    if spans:
        summary_path = session.new_path(f"{stem}-summary", ".mp4")
        try:
            concat_clips(video, spans, summary_path)
            files.append(str(summary_path))
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


def _segment(result: dict | None, start: float, end: float) -> list[float]:
    duration = float((result or {}).get("duration") or end)
    start = max(0.0, min(float(start), duration))
    return [round(start, 3), round(max(start, min(float(end), duration)), 3)]


def _seek_top(result: dict | None):
    windows = (result or {}).get("pred_relevant_windows") or []
    if not windows:
        return gr.skip()
    return gr.Video(playback_position=float(windows[0][0]))


def _pick_row(result: dict | None, evt: gr.SelectData):
    windows = (result or {}).get("pred_relevant_windows") or []
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if row is None or not 0 <= int(row) < len(windows):
        return gr.skip(), gr.skip()
    start, end = windows[int(row)][:2]
    return gr.Video(playback_position=float(start)), _segment(result, start, end)


def _pick_point(result: dict | None, evt: gr.SelectData):
    if not result:
        return gr.skip(), gr.skip()
    points = [result.get("pred_highlight")] + list(result.get("pred_summary") or [])
    i = evt.index if isinstance(evt.index, int) else None
    if i is None or not 0 <= i < len(points) or points[i] is None:
        return gr.skip(), gr.skip()
    half = float(result.get("clip_len") or 2.0) / 2
    segment = _segment(result, float(points[i]) - half, float(points[i]) + half)
    return gr.Video(playback_position=segment[0]), segment


def _pick_range(result: dict | None, evt: gr.SelectData):
    index = evt.index
    if not result or not isinstance(index, (list, tuple)) or len(index) < 2:
        return gr.skip(), gr.skip()
    segment = _segment(result, min(index[:2]), max(index[:2]))
    return gr.Video(playback_position=segment[0]), segment


def load_examples(examples_dir: str | Path) -> list[dict]:
    """Rows of `examples.json`: {video, text, image, label} with paths resolved; missing files are skipped."""
    folder = Path(examples_dir)
    listing = folder / "examples.json"
    if not listing.is_file():
        logger.info("no examples at %s", listing)
        return []
    rows = []
    for entry in json.loads(listing.read_text()).get("videos", []):
        video = folder / entry["video"]
        if not video.is_file():
            logger.warning("example video missing: %s", video)
            continue
        for query in entry.get("queries", []):
            image = folder / query["image"] if query.get("image") else None
            if image is not None and not image.is_file():
                logger.warning("example image missing: %s", image)
                continue
            text = query.get("text", "")
            asked = " + ".join(([f"“{text}”"] if text else []) + ([f"{image.stem} image"] if image else []))
            label = query.get("label") or f"{entry.get('title', video.stem)} · {asked}"
            rows.append({"video": str(video), "text": text, "image": str(image) if image else None,
                         "label": label})
    return rows
