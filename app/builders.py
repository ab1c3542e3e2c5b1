"""Pure functions that turn a prediction into what the page shows: moments, numbers, the curve, captions.

Nothing here imports gradio or touches the model, so every builder is unit-tested on plain values. A
"prediction" is anything with the attributes of `univtg_core.Prediction` (moments with start/end/score,
saliency, clip_len, duration, highlight, summary).

One format per kind of number, used by every builder (table, curve axis, captions, the JSON's readable
fields) and by the CLI: `univtg_core.formatting` (times `format_time` / `format_span`, scores
`format_score`, lengths `format_length`).
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# Every kind of number in one place, the CLI's too; the handlers and the layout use them as builders.format_*.
from univtg_core import WindowSearch, format_length, format_score, format_span, format_time, zoom_range  # noqa: F401

TABLE_HEADERS = ["#", "Start", "End", "Length", "Score", "Preview"]
TABLE_DATATYPES = ["number", "str", "str", "str", "str", "markdown"]
# What `fold_nested` may do with a moment nested in a better one: fold it under it, drop it, or keep it.
NESTED_MODES = ("fold", "drop", "keep")
# Tick steps in seconds: round numbers a reader expects on a time axis.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
# Colours of the curve and its marks (colour-blind safe pairs: blue curve, orange moments).
CURVE_COLOUR = "#2563eb"
MOMENT_COLOUR = "#f97316"
HIGHLIGHT_COLOUR = "#dc2626"
SUMMARY_COLOUR = "#16a34a"
PLAYING_COLOUR = "#7c3aed"


class _MomentLike(Protocol):
    start: float
    end: float
    score: float


# --------------------------------------------------------------------------------------------------------
# Moments as the page shows them: each event once


@dataclass(frozen=True)
class ShownMoment:
    """A moment the page shows, and the moments folded under it (nested inside it, or holding it)."""

    moment: Any  # a univtg_core.Moment (or anything with start, end, score)
    folded: tuple[Any, ...] = ()


def _nested(a: _MomentLike, b: _MomentLike, tolerance: float) -> bool:
    """Whether one of the two lies inside the other (edges may stick out by `tolerance` seconds)."""
    a_in_b = a.start >= b.start - tolerance and a.end <= b.end + tolerance
    b_in_a = b.start >= a.start - tolerance and b.end <= a.end + tolerance
    return a_in_b or b_in_a


def fold_nested(moments: Sequence[_MomentLike], mode: str = "fold", tolerance: float = 0.0) -> list[ShownMoment]:
    """Each event once: a moment nested with a better-scored one (inside it, or around it) goes under it.

    A display rule, not the core's: `pred_relevant_windows` stays the ranked list evaluation scores (NMS
    keeps a 4-6 s moment inside a better 4-10 s one, since their IoU is low). `moments` come best first, as
    the core returns them. `mode` is 'fold' (kept under the better one), 'drop' (left out) or 'keep' (every
    moment shown on its own).
    """
    if mode not in NESTED_MODES:
        raise ValueError(f"nested mode must be one of {', '.join(NESTED_MODES)}; got {mode!r}")
    shown: list[list[Any]] = []  # [moment, [folded...]]
    for moment in moments:
        parent = None if mode == "keep" else next((s for s in shown if _nested(moment, s[0], tolerance)), None)
        if parent is None:
            shown.append([moment, []])
        elif mode == "fold":
            parent[1].append(moment)
    return [ShownMoment(m, tuple(folded)) for m, folded in shown]


def _as_shown(items: Sequence[Any]) -> list[ShownMoment]:
    return [item if isinstance(item, ShownMoment) else ShownMoment(item) for item in items]


def moment_thumb_times(moments: Sequence[Any], top_k: int = 10) -> list[float]:
    """Where each row's thumbnail is taken: the middle of the moment, the frame that best stands for it."""
    return [(float(s.moment.start) + float(s.moment.end)) / 2 for s in _as_shown(moments)[:top_k]]


def _folded_note(folded: Sequence[_MomentLike], duration: float, listed: int = 2) -> str:
    spans = [format_span(m.start, m.end, duration) for m in folded[:listed]]
    more = f" and {len(folded) - listed} more" if len(folded) > listed else ""
    return f"also {', '.join(spans)}{more}"


def moment_rows(
    moments: Sequence[Any],
    duration: float,
    thumbs: Sequence[str | None] | None = None,
    top_k: int = 10,
) -> list[list[Any]]:
    """Table rows [rank, start, end, length, score, preview] for the best `top_k` moments, best first.

    `moments` are `ShownMoment`s (see `fold_nested`; their folded moments are named in the preview cell)
    or plain moments. `thumbs` holds one markdown image per row (see `thumbnail_markdown`) or None.
    """
    rows = []
    for rank, shown in enumerate(_as_shown(moments)[:top_k]):
        moment = shown.moment
        thumb = thumbs[rank] if thumbs is not None and rank < len(thumbs) else None
        preview = [thumb] if thumb else []
        if shown.folded:
            preview.append(_folded_note(shown.folded, duration))
        rows.append(
            [
                rank + 1,
                format_time(moment.start, duration=duration),
                format_time(moment.end, duration=duration),
                format_length(float(moment.end) - float(moment.start)),
                format_score(moment.score),
                "\n\n".join(preview),
            ]
        )
    return rows


def thumbnail_markdown(frame: np.ndarray, alt: str = "frame", max_side: int = 112, quality: int = 80) -> str:
    """A small JPEG inlined as a markdown image: the table needs no file route and works behind any proxy."""
    data = base64.b64encode(jpeg_bytes(frame, max_side, quality)).decode("ascii")
    return f"![{alt}](data:image/jpeg;base64,{data})"


def jpeg_bytes(frame: np.ndarray, max_side: int = 320, quality: int = 82) -> bytes:
    """A frame as a JPEG no larger than `max_side` pixels on its longer side (thumbnails sized for a screen)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------------
# Highlight and summary points


def pick_summary(summary: Sequence[float], saliency: np.ndarray, clip_len: float, limit: int = 24) -> tuple[float, ...]:
    """The summary points the page shows and plays, in time order: all of them, or the `limit` most salient.

    A two-hour film has hundreds of summary points (the core's summary covers 15 % of the video); a gallery
    and a watchable summary video need a few dozen. Ties keep the earlier point.
    """
    points = sorted(float(t) for t in summary)
    if len(points) <= limit:
        return tuple(points)
    values = np.asarray(saliency, dtype=np.float64).reshape(-1)
    n = values.size

    def value(t: float) -> float:
        return float(values[int(np.clip(math.floor(t / clip_len), 0, n - 1))]) if n else 0.0

    best = sorted(range(len(points)), key=lambda i: (-value(points[i]), i))[:limit]
    return tuple(points[i] for i in sorted(best))


def gallery_points(highlight: float, summary: Sequence[float], duration: float) -> list[tuple[float, str]]:
    """(seconds, caption) for the gallery: the top highlight first, then the summary points in time order."""
    points = [(float(highlight), f"★ Highlight · {format_time(highlight, duration=duration)}")]
    for t in sorted(float(s) for s in summary):
        points.append((t, f"Summary · {format_time(t, duration=duration)}"))
    return points


def summary_caption(shown: int, total: int, seconds: float | None) -> str:
    """What the summary player holds: how many points and how long it plays."""
    if not total:
        return "No summary points."
    points = f"{shown} summary point" + ("" if shown == 1 else "s")
    if shown < total:
        points = f"the {shown} most salient of {total} summary points"
    length = f" · {format_length(seconds)}" if seconds is not None else ""
    return f"**Summary video:** {points}{length}"


# --------------------------------------------------------------------------------------------------------
# The saliency figure: the whole video, and a zoomed panel around the selected moment


def time_ticks(duration: float, max_ticks: int = 8, start: float = 0.0) -> list[float]:
    """Ticks on round steps (1, 2, 5, 10, 15, 30 s, 1, 2, 5 min, ...) over [start, duration], at most `max_ticks`."""
    span = float(duration) - float(start)
    if not math.isfinite(span) or span <= 0:
        return [float(start)]
    step = next((s for s in _TICK_STEPS if span / s <= max_ticks - 1), None)
    if step is None:
        step = _TICK_STEPS[-1] * math.ceil(span / (_TICK_STEPS[-1] * (max_ticks - 1)))
    first = math.ceil(float(start) / step - 1e-9) * step
    return [float(t) for t in np.arange(first, float(duration) + 1e-9, step)]


def zoom_window(segment: tuple[float, float], duration: float, clip_len: float) -> tuple[float, float]:
    """The stretch of video the zoomed panel shows around `segment`: the segment and half its length on each
    side, at least 15 s or 8 clips wide, moved (not cut) to stay inside the video (`univtg_core.zoom_range`)."""
    start, end = sorted(max(float(v), 0.0) for v in segment)
    if not duration > 0:
        return 0.0, 1.0
    return zoom_range(float(duration), start, end, width=2 * (end - start), min_width=max(15.0, 8 * float(clip_len)))


@dataclass(frozen=True)
class CurveSpec:
    """Everything the saliency figure draws, as data: the figure is a rendering of this and nothing else."""

    edges: np.ndarray  # (n_clips + 1,) clip boundaries in seconds, last one clamped to the duration
    values: np.ndarray  # (n_clips,) saliency per clip
    spans: tuple[tuple[float, float, float], ...]  # shaded moments (start, end, score), best first
    highlight: tuple[float, float]  # (seconds, saliency there)
    summary: tuple[tuple[float, float], ...]  # (seconds, saliency there), ascending
    duration: float
    ticks: tuple[float, ...]
    tick_labels: tuple[str, ...]
    zoom: tuple[float, float]  # the zoomed panel's range in seconds
    playing: tuple[float, float] | None  # what the player plays now, marked on both panels


def curve_spec(
    prediction: Any,
    shade_top: int = 3,
    moments: Sequence[Any] | None = None,
    playing: tuple[float, float] | None = None,
) -> CurveSpec:
    """The saliency curve over the whole video with the best `shade_top` moments and the marked points.

    `moments` are the moments the table shows (see `fold_nested`), so the shading agrees with it; by
    default the prediction's own. The zoomed panel is centred on `playing` (a row, a point, a dragged range),
    else on the top moment, else on the highlight.
    """
    values = np.asarray(prediction.saliency, dtype=np.float64).reshape(-1)
    clip_len = float(prediction.clip_len)
    duration = float(prediction.duration)
    n = values.size
    edges = np.arange(n + 1, dtype=np.float64) * clip_len
    if n:
        edges[-1] = max(min(edges[-1], duration), edges[-2] + 1e-6) if duration > 0 else edges[-1]
    duration = max(duration, float(edges[-1]) if n else 0.0)

    def value_at(t: float) -> float:
        if n == 0:
            return 0.0
        return float(values[int(np.clip(math.floor(t / clip_len), 0, n - 1))])

    shown = _as_shown(prediction.moments if moments is None else moments)[:shade_top]
    spans = tuple((float(s.moment.start), float(s.moment.end), float(s.moment.score)) for s in shown)
    highlight = float(prediction.highlight)
    summary = tuple((float(t), value_at(float(t))) for t in sorted(prediction.summary))
    ticks = tuple(time_ticks(duration))
    if playing is not None:
        playing = (float(min(playing)), float(max(playing)))
    focus = playing or (spans[0][:2] if spans else (highlight - clip_len / 2, highlight + clip_len / 2))
    return CurveSpec(
        edges=edges,
        values=values,
        spans=spans,
        highlight=(highlight, value_at(highlight)),
        summary=summary,
        duration=duration,
        ticks=ticks,
        tick_labels=tuple(format_time(t, duration=duration) for t in ticks),
        zoom=zoom_window(focus, duration, clip_len),
        playing=playing,
    )


def _draw_panel(ax, spec: CurveSpec, low: float, pad: float, *, overview: bool) -> None:
    """One panel: shaded moments, the stepped curve, summary and highlight marks, the playing segment."""
    values = spec.values
    suffix = "" if overview else "-zoom"
    for rank, (start, end, _score) in enumerate(spec.spans):
        ax.axvspan(start, end, color=MOMENT_COLOUR, alpha=0.34 if rank == 0 else 0.14, lw=0,
                   gid=f"moment-{rank}{suffix}",
                   label=("Top moment" if rank == 0 else ("Other moments" if rank == 1 else None)) if overview
                   else None)
        ax.text(start, 0.98, f" #{rank + 1}", transform=ax.get_xaxis_transform(), ha="left", va="top",
                fontsize=8, color="#9a3412", gid=f"rank-{rank}{suffix}", clip_on=True)
    if values.size:
        ax.stairs(values, spec.edges, baseline=low - pad, fill=True, color=CURVE_COLOUR, alpha=0.12,
                  gid=f"fill{suffix}")
        ax.stairs(values, spec.edges, color=CURVE_COLOUR, lw=1.4 if overview else 1.8, gid=f"curve{suffix}",
                  label="Saliency" if overview else None)
    if spec.summary:
        xs = [t for t, _ in spec.summary]
        ax.plot(xs, [low - pad * 0.45] * len(xs), ls="none", marker="^", ms=6 if overview else 8,
                color=SUMMARY_COLOUR, gid=f"summary{suffix}", label="Summary" if overview else None)
    t, v = spec.highlight
    ax.axvline(t, color=HIGHLIGHT_COLOUR, lw=1, ls="--", alpha=0.8, gid=f"highlight-line{suffix}")
    ax.plot([t], [v], ls="none", marker="*", ms=12, color=HIGHLIGHT_COLOUR, gid=f"highlight{suffix}",
            label="Highlight" if overview else None)
    if spec.playing is not None:
        start, end = spec.playing
        ax.axvspan(start, max(end, start + 1e-3), facecolor="none", edgecolor=PLAYING_COLOUR, lw=2.2,
                   gid=f"playing{suffix}", label="Playing" if overview else None)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", alpha=0.25)


def _set_time_axis(ax, start: float, end: float, duration: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ticks = time_ticks(end, start=start) if end > start else [start]
    ax.set_xlim(start, end if end > start else start + 1)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_time(x, duration=duration)))


def saliency_figure(spec: CurveSpec, width: float = 9.0, height: float = 3.9):
    """Draw `spec` with matplotlib's object API (no pyplot: safe with many users in one process).

    Two panels: the whole video (with the zoomed stretch outlined) and the zoomed stretch. Artists carry
    gids ('curve', 'moment-0'..., 'highlight', 'summary', 'playing', 'zoom-range'; '-zoom' on the second
    panel's) so tests and callers can find them.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    overview, zoomed = fig.subplots(2, 1, height_ratios=[1.45, 1])
    values = spec.values
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 1.0
    pad = (high - low) * 0.12 or 0.1
    for ax, is_overview in ((overview, True), (zoomed, False)):
        ax.set_ylim(low - pad, high + pad * 1.6)
        _draw_panel(ax, spec, low, pad, overview=is_overview)
    zoom_start, zoom_end = spec.zoom
    overview.axvspan(zoom_start, zoom_end, facecolor="#64748b", alpha=0.10, edgecolor="#475569", lw=0.8,
                     ls=":", gid="zoom-range")
    _set_time_axis(overview, 0.0, spec.duration, spec.duration)
    overview.set_ylabel("Saliency", fontsize=9)
    overview.legend(loc="lower center", ncol=6, frameon=False, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    _set_time_axis(zoomed, zoom_start, zoom_end, spec.duration)
    zoomed.set_ylabel("Zoom", fontsize=9)
    zoomed.set_title(format_span(zoom_start, zoom_end, spec.duration), fontsize=8, loc="right", pad=2,
                     color="#475569")
    for ax in (overview, zoomed):
        ax.tick_params(axis="x", labelsize=8)
    return fig


def figure_png(fig, path) -> None:
    """Write the figure as PNG; the Agg canvas is attached here so no GUI backend is ever imported."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", facecolor="white")


def curve_points(prediction: Any, max_points: int = 800) -> dict[str, list[float]]:
    """Columns for the interactive curve: {'time': seconds, 'saliency', 'at': the time as the page prints it},
    at most `max_points` points.

    One point per clip centre; a long video's clips are binned (each bin's highest value at its middle,
    so peaks survive) so the page gets a curve sized for a screen, not one point per clip of a film.
    """
    values = np.asarray(prediction.saliency, dtype=np.float64).reshape(-1)
    clip_len = float(prediction.clip_len)
    duration = float(prediction.duration)
    n = values.size
    if n <= max_points:
        times = np.minimum((np.arange(n) + 0.5) * clip_len, duration)
        kept = values
    else:
        bounds = np.linspace(0, n, max_points + 1).round().astype(int)
        kept = np.maximum.reduceat(values, bounds[:-1])
        times = np.minimum((bounds[:-1] + bounds[1:]) / 2 * clip_len, duration)
    return {"time": [round(float(t), 3) for t in times], "saliency": [round(float(v), 4) for v in kept],
            "at": [format_time(float(t), duration=duration) for t in times]}


# --------------------------------------------------------------------------------------------------------
# What ran and what came back, as words and as the JSON the page shows


def query_kind(text: str | None, image: Any) -> str:
    """'text', 'image' or 'text + image': which inputs the query that ran used."""
    parts = (["text"] if text else []) + (["image"] if image else [])
    return " + ".join(parts) or "empty"


def query_label(text: str | None, image_name: str | None, max_chars: int = 80) -> str:
    """The query that ran, as the result's heading says it: '“the cyan part” + image cyan.png'."""
    parts = []
    if text:
        shown = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        parts.append(f"“{shown}”")
    if image_name:
        parts.append(f"image {image_name}")
    return " + ".join(parts)


def prediction_dict(prediction: Any) -> dict:
    """The core's JSON of a prediction; the one place the app calls it."""
    return prediction.to_dict()


def _window(moment: _MomentLike) -> list[float]:
    return [round(float(moment.start), 4), round(float(moment.end), 4), round(float(moment.score), 4)]


def shown_result(prediction: Any, shown: Sequence[ShownMoment], *, nested: str, kind: str,
                 summary_shown: Sequence[float] = ()) -> dict:
    """The JSON the page shows and the API returns: the core's keys, with `pred_relevant_windows` the moments
    the table shows (each event once), the folded ones in `folded_windows` as [start, end, score, row],
    what ran in `query_kind`, the summary points the gallery and the summary video show in `summary_shown`,
    and `readable`: the same values as the page prints them."""
    result = prediction_dict(prediction)
    duration = float(prediction.duration)
    result["pred_relevant_windows"] = [_window(s.moment) for s in shown]
    result["folded_windows"] = [[*_window(m), row + 1] for row, s in enumerate(shown) for m in s.folded]
    result["nested_moments"] = nested
    result["query_kind"] = kind
    result["summary_shown"] = [round(float(t), 4) for t in summary_shown]

    def readable(moment: _MomentLike) -> dict:
        return {"start": format_time(moment.start, duration=duration),
                "end": format_time(moment.end, duration=duration),
                "length": format_length(float(moment.end) - float(moment.start)),
                "score": format_score(moment.score)}

    result["readable"] = {
        "duration": format_length(duration),
        "moments": [{"rank": i + 1, **readable(s.moment), "folded": [readable(m) for m in s.folded]}
                    for i, s in enumerate(shown)],
        "highlight": format_time(prediction.highlight, duration=duration),
        "summary_shown": [format_time(t, duration=duration) for t in summary_shown],
    }
    return result


def search_text(search: dict | None) -> str | None:
    """The windows a long video's query read, from the result's `window_search` ("searched the 8 best of 97
    windows (auto)"); None when it laid none (zero-shot over every clip) or the video is one window."""
    if not search or int(search.get("total") or 0) <= 1:
        return None
    found = WindowSearch(**search)
    return f"{found.describe()} ({found.asked})"


def status_line(label: str, kind: str, n_moments: int, n_folded: int, info: dict | None, query_seconds: float,
                mode: str, search: str | None = None) -> str:
    """The line above the results: the query that ran, what came back, how long indexing and the query took,
    and which windows of a long video were searched (`search_text`).

    `info` None: an example's answer kept from its first run, whose timings say nothing about this one."""
    if info is None:
        timings = "the example's stored answer"
    else:
        clips = f"{info['n_clips']} clips, {format_length(info['duration'])} of video"
        if info["from_cache"]:
            timings = f"cached features ({clips}) loaded in {format_length(info['seconds'])}"
        else:
            timings = f"indexed {clips} in {format_length(info['seconds'])}"
        timings += f" · query {query_seconds * 1000:.0f} ms"
    moments = f"{n_moments} moment" + ("" if n_moments == 1 else "s")
    if n_folded:
        moments += f" ({n_folded} nested one{'' if n_folded == 1 else 's'} folded)"
    searched = f" · {search}" if search else ""
    return f"**Query ({kind}):** {label} · {moments} · {timings} · mode: {mode}{searched}"


def progress_text(done: int, total: int, seconds_left: float | None = None) -> str:
    """What the indexing progress bar says: clips done and, once the rate is known, the time left (from
    `univtg_core.TimeLeft`: see `app.long_view.IndexProgress`)."""
    text = f"Encoding clips {done}/{total}"
    if done <= 0 or total <= 0 or seconds_left is None:
        return text
    return f"{text} · about {format_length(seconds_left)} left"


def slug(text: str | None, fallback: str = "query", max_len: int = 32) -> str:
    """A file-name friendly piece of the query (file names stay readable; uniqueness comes from elsewhere)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", text or "").strip("-").lower()[:max_len].strip("-")
    return cleaned or fallback


def log_summary(text: str | None, limit: int = 80) -> str:
    """A query as the server log may hold it: at most `limit` characters, every unprintable one escaped
    (control and bidirectional characters cannot reach a terminal), and its full length."""
    text = text or ""
    head = text[:limit]
    escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in head)
    more = f"… ({len(text)} characters)" if len(text) > limit else ""
    return f"'{escaped}'{more}"
