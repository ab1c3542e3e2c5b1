"""Pure functions that turn a prediction into what the page shows: times, table rows, the curve, captions.

Nothing here imports gradio or touches the model, so every builder is unit-tested on plain values. A
"prediction" is anything with the attributes of `univtg_core.Prediction` (moments with start/end/score,
saliency, clip_len, duration, highlight, summary).
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

from univtg_core import format_time

TABLE_HEADERS = ["#", "Start", "End", "Length", "Score", "Preview"]
TABLE_DATATYPES = ["number", "str", "str", "str", "number", "markdown"]
# Tick steps in seconds: round numbers a reader expects on a time axis.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
# Colours of the curve and its marks (colour-blind safe pairs: blue curve, orange moments).
CURVE_COLOUR = "#2563eb"
MOMENT_COLOUR = "#f97316"
HIGHLIGHT_COLOUR = "#dc2626"
SUMMARY_COLOUR = "#16a34a"


class _MomentLike(Protocol):
    start: float
    end: float
    score: float


def format_duration(seconds: float) -> str:
    """A length for prose: '0.4 s', '12.5 s', '2 min 05 s', '1 h 02 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {s:02d} s" if s else f"{m} min"


def moment_thumb_times(moments: Sequence[_MomentLike], top_k: int = 10) -> list[float]:
    """Where each row's thumbnail is taken: the middle of the moment, the frame that best stands for it."""
    return [(float(m.start) + float(m.end)) / 2 for m in list(moments)[:top_k]]


def moment_rows(
    moments: Sequence[_MomentLike],
    duration: float,
    thumbs: Sequence[str | None] | None = None,
    top_k: int = 10,
) -> list[list[Any]]:
    """Table rows [rank, start, end, length, score, preview] for the best `top_k` moments, best first.

    `thumbs` holds one markdown image per row (see `thumbnail_markdown`) or None where no frame was read.
    """
    rows = []
    for rank, moment in enumerate(list(moments)[:top_k]):
        thumb = thumbs[rank] if thumbs is not None and rank < len(thumbs) else None
        rows.append(
            [
                rank + 1,
                format_time(moment.start, duration=duration),
                format_time(moment.end, duration=duration),
                format_duration(max(0.0, float(moment.end) - float(moment.start))),
                round(float(moment.score), 3),
                thumb or "",
            ]
        )
    return rows


def thumbnail_markdown(frame: np.ndarray, alt: str = "frame", max_side: int = 112, quality: int = 80) -> str:
    """A small JPEG inlined as a markdown image: the table needs no file route and works behind any proxy."""
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{alt}](data:image/jpeg;base64,{data})"


def gallery_points(highlight: float, summary: Sequence[float], duration: float) -> list[tuple[float, str]]:
    """(seconds, caption) for the gallery: the top highlight first, then the summary points in time order."""
    points = [(float(highlight), f"★ Highlight · {format_time(highlight, duration=duration)}")]
    for t in sorted(float(s) for s in summary):
        points.append((t, f"Summary · {format_time(t, duration=duration)}"))
    return points


def time_ticks(duration: float, max_ticks: int = 8) -> list[float]:
    """Tick positions on round steps (1, 2, 5, 10, 15, 30 s, 1, 2, 5 min, ...) with at most `max_ticks`."""
    if not math.isfinite(duration) or duration <= 0:
        return [0.0]
    step = next((s for s in _TICK_STEPS if duration / s <= max_ticks - 1), None)
    if step is None:
        step = _TICK_STEPS[-1] * math.ceil(duration / (_TICK_STEPS[-1] * (max_ticks - 1)))
    return [float(t) for t in np.arange(0.0, duration + 1e-9, step)]


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


def curve_spec(prediction: Any, shade_top: int = 3) -> CurveSpec:
    """The saliency curve over the whole video with the best `shade_top` moments and the marked points."""
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

    spans = tuple((float(m.start), float(m.end), float(m.score)) for m in list(prediction.moments)[:shade_top])
    highlight = float(prediction.highlight)
    summary = tuple((float(t), value_at(float(t))) for t in sorted(prediction.summary))
    ticks = tuple(time_ticks(duration))
    return CurveSpec(
        edges=edges,
        values=values,
        spans=spans,
        highlight=(highlight, value_at(highlight)),
        summary=summary,
        duration=duration,
        ticks=ticks,
        tick_labels=tuple(format_time(t, duration=duration) for t in ticks),
    )


def saliency_figure(spec: CurveSpec, width: float = 9.0, height: float = 2.9):
    """Draw `spec` with matplotlib's object API (no pyplot: safe with many users in one process).

    Artists carry gids ('curve', 'moment-0'..., 'highlight', 'summary') so tests and callers can find them.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    values = spec.values
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 1.0
    pad = (high - low) * 0.12 or 0.1
    ax.set_ylim(low - pad, high + pad * 1.6)
    for rank, (start, end, _score) in enumerate(spec.spans):
        ax.axvspan(
            start,
            end,
            color=MOMENT_COLOUR,
            alpha=0.34 if rank == 0 else 0.14,
            lw=0,
            gid=f"moment-{rank}",
            label="Top moment" if rank == 0 else ("Other moments" if rank == 1 else None),
        )
        ax.text(start, 0.98, f" #{rank + 1}", transform=ax.get_xaxis_transform(), ha="left", va="top",
                fontsize=8, color="#9a3412", gid=f"rank-{rank}")
    if values.size:
        ax.stairs(values, spec.edges, baseline=low - pad, fill=True, color=CURVE_COLOUR, alpha=0.12, gid="fill")
        ax.stairs(values, spec.edges, color=CURVE_COLOUR, lw=1.6, gid="curve", label="Saliency")
    if spec.summary:
        xs = [t for t, _ in spec.summary]
        ax.plot(
            xs,
            [low - pad * 0.45] * len(xs),
            ls="none",
            marker="^",
            ms=7,
            color=SUMMARY_COLOUR,
            gid="summary",
            label="Summary",
        )
    t, v = spec.highlight
    ax.axvline(t, color=HIGHLIGHT_COLOUR, lw=1, ls="--", alpha=0.8, gid="highlight-line")
    ax.plot([t], [v], ls="none", marker="*", ms=13, color=HIGHLIGHT_COLOUR, gid="highlight", label="Highlight")
    ax.set_xlim(0, spec.duration if spec.duration > 0 else 1)
    labels = dict(zip(spec.ticks, spec.tick_labels, strict=True))
    ax.xaxis.set_major_locator(FixedLocator(list(spec.ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: labels.get(x, format_time(x, duration=spec.duration))))
    ax.set_ylabel("Saliency")
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="x", alpha=0.25)
    ax.legend(loc="lower center", ncol=5, frameon=False, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    return fig


def figure_png(fig, path) -> None:
    """Write the figure as PNG; the Agg canvas is attached here so no GUI backend is ever imported."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", facecolor="white")


def curve_points(prediction: Any) -> dict[str, list[float]]:
    """Columns for the interactive curve (one point per clip centre): {'time': [...], 'saliency': [...]}."""
    values = np.asarray(prediction.saliency, dtype=np.float64).reshape(-1)
    clip_len = float(prediction.clip_len)
    times = [min((i + 0.5) * clip_len, float(prediction.duration)) for i in range(values.size)]
    return {"time": [round(t, 3) for t in times], "saliency": [round(float(v), 4) for v in values]}


def slug(text: str | None, fallback: str = "query", max_len: int = 32) -> str:
    """A file-name friendly piece of the query (file names stay readable; uniqueness comes from elsewhere)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", text or "").strip("-").lower()[:max_len].strip("-")
    return cleaned or fallback
