"""Converters from the benchmarks' own annotation formats into QVHighlights-style jsonl records.

Each function returns records {qid, query, vid, duration, relevant_windows: [[start, end]]} in seconds,
windows clamped to [0, duration]. Formats:

- Charades-STA txt: `VID START END##sentence` per line; durations come from Charades_v1_{train,test}.csv
  (`id`, `length` columns), a JSON {vid: seconds}, or (with a warning) the latest end time per video.
- TACoS json (TALL / 2D-TAN): {"s13-d21.avi": {"num_frames", "fps", "timestamps": [[f0, f1], ...] in
  frames, "sentences": [...]}}.
- ActivityNet Captions json: {"v_xxx": {"duration", "timestamps": [[s, e], ...] in seconds, "sentences"}}.
- Ego4D NLQ json (v1/v2): videos -> clips -> annotations -> language_queries; the video is the clip (vid =
  clip_uid), times relative to the clip start, qid = <annotation_uid>_<query index>.
- MAD json (MAD_{train,val,test}.json): {id: {"movie", "sentence", "timestamps", "ext_timestamps",
  "movie_duration"}} in seconds; qid = the annotation id (a string, the `qid` of the guidance score files),
  vid = the movie; the window is `ext_timestamps` (what MAD's own baselines train and evaluate on) unless
  asked for `timestamps`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .data import DataError

logger = logging.getLogger(__name__)

FORMATS = ("charades", "tacos", "anet", "ego4d", "mad")
MAD_WINDOW_KEYS = ("ext_timestamps", "timestamps")


def _record(qid: Any, query: str, vid: str, duration: float, start: float, end: float) -> dict:
    duration = float(duration)
    start, end = sorted((float(start), float(end)))
    start = min(max(start, 0.0), duration)
    end = min(max(end, 0.0), duration)
    return {"qid": qid, "query": query.strip(), "vid": vid, "duration": round(duration, 4),
            "relevant_windows": [[round(start, 4), round(end, 4)]]}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_durations(path: str | Path) -> dict[str, float]:
    """Video durations from Charades_v1_*.csv (id, length), a JSON {vid: seconds}, or `vid seconds` lines."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"durations file not found: {path}")
    if path.suffix == ".json":
        data = _read_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object {{vid: seconds}}")
        return {str(k): float(v) for k, v in data.items()}
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"id", "length"} <= set(reader.fieldnames):
                raise DataError(f"{path}: expected a CSV with 'id' and 'length' columns (Charades_v1_*.csv)")
            return {row["id"]: float(row["length"]) for row in reader}
    durations = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{path} line {line_no}: expected 'vid seconds'")
            durations[parts[0]] = float(parts[1])
    return durations


def convert_charades(path: str | Path, durations: dict[str, float] | None = None, qid_start: int = 0) -> list[dict]:
    """Charades-STA `VID START END##sentence` lines -> records (qids numbered from qid_start)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        parts = head.split()
        if not sep or len(parts) != 3:
            raise DataError(f"{path} line {line_no}: expected 'VID START END##sentence', got {line!r}")
        try:
            rows.append((parts[0], float(parts[1]), float(parts[2]), sentence))
        except ValueError:
            raise DataError(f"{path} line {line_no}: start/end are not numbers: {line!r}") from None
    if durations is None:
        logger.warning("no durations given for %s: using each video's latest annotated end (pass --durations "
                       "Charades_v1_<split>.csv for the real lengths)", path)
        durations = {}
        for vid, _, end, _ in rows:
            durations[vid] = max(durations.get(vid, 0.0), end)
    records = []
    for i, (vid, start, end, sentence) in enumerate(rows):
        if vid not in durations:
            raise DataError(f"{path}: no duration for video {vid!r} in the durations file")
        records.append(_record(qid_start + i, sentence, vid, durations[vid], start, end))
    return records


def _pairs(entry: dict, where: str) -> Iterable[tuple[list, str]]:
    stamps, sentences = entry.get("timestamps"), entry.get("sentences")
    if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
        raise DataError(f"{where}: expected equally long 'timestamps' and 'sentences' lists")
    return zip(stamps, sentences)


def convert_tacos(path: str | Path, qid_start: int = 0) -> list[dict]:
    """TACoS json (timestamps in frames, with num_frames and fps) -> records; vid drops the .avi suffix."""
    data = _read_json(Path(path))
    records = []
    for key, entry in data.items():
        where = f"{path} [{key}]"
        try:
            fps, n_frames = float(entry["fps"]), float(entry["num_frames"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: expected 'fps' and 'num_frames'") from None
        vid = key[:-4] if key.endswith(".avi") else key
        for (f0, f1), sentence in _pairs(entry, where):
            records.append(_record(qid_start + len(records), sentence, vid, n_frames / fps, f0 / fps, f1 / fps))
    return records


def convert_anet(path: str | Path, qid_start: int = 0) -> list[dict]:
    """ActivityNet Captions json (timestamps in seconds, with duration) -> records."""
    data = _read_json(Path(path))
    records = []
    for vid, entry in data.items():
        where = f"{path} [{vid}]"
        if "duration" not in entry:
            raise DataError(f"{where}: expected 'duration'")
        for (start, end), sentence in _pairs(entry, where):
            records.append(_record(qid_start + len(records), sentence, vid, entry["duration"], start, end))
    return records


def convert_ego4d(path: str | Path) -> list[dict]:
    """Ego4D NLQ json -> records per language query (clip-relative times; queries without text skipped)."""
    data = _read_json(Path(path))
    if "videos" not in data:
        raise DataError(f"{path}: expected the Ego4D NLQ layout with a top-level 'videos' list")
    records, skipped = [], 0
    for video in data["videos"]:
        for clip in video.get("clips", []):
            clip_start = float(clip.get("clip_start_sec", 0.0))
            duration = float(clip["clip_end_sec"]) - clip_start
            for annotation in clip.get("annotations", []):
                for i, query in enumerate(annotation.get("language_queries", [])):
                    text = query.get("query")
                    if not text or query.get("clip_start_sec") is None or query.get("clip_end_sec") is None:
                        skipped += 1
                        continue
                    records.append(_record(f"{annotation['annotation_uid']}_{i}", text, clip["clip_uid"],
                                           duration, float(query["clip_start_sec"]) - clip_start,
                                           float(query["clip_end_sec"]) - clip_start))
    if skipped:
        logger.warning("%s: skipped %d language queries without text or times", path, skipped)
    return records


def convert_mad(path: str | Path, window_key: str = "ext_timestamps") -> list[dict]:
    """MAD annotation json -> records, one per sentence, in file order (windows clamped to the movie)."""
    if window_key not in MAD_WINDOW_KEYS:
        raise DataError(f"window_key must be one of {', '.join(MAD_WINDOW_KEYS)}, got {window_key!r}")
    data = _read_json(Path(path))
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected MAD's layout, a JSON object {{id: {{movie, sentence, {window_key}, "
                        "movie_duration}}}")
    records, empty = [], 0
    for key, entry in data.items():
        where = f"{path} [{key}]"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object with movie, sentence, {window_key}, movie_duration")
        missing = [k for k in ("movie", "sentence", window_key, "movie_duration") if k not in entry]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)}")
        stamps = entry[window_key]
        try:
            start, end = (float(t) for t in stamps)
            duration = float(entry["movie_duration"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: {window_key} must be [start, end] in seconds and movie_duration a "
                            "number") from None
        record = _record(str(key), str(entry["sentence"]), str(entry["movie"]), duration, start, end)
        empty += record["relevant_windows"][0][0] >= record["relevant_windows"][0][1]
        records.append(record)
    if empty:
        logger.warning("%s: %d of %d windows are empty once clamped to their movie", path, empty, len(records))
    return records


def convert(fmt: str, path: str | Path, durations: str | Path | None = None, qid_start: int = 0) -> list[dict]:
    """Dispatch by format name (one of FORMATS)."""
    if fmt == "charades":
        return convert_charades(path, read_durations(durations) if durations else None, qid_start)
    if durations:
        raise DataError(f"--durations applies to charades only; {fmt} annotations carry their durations")
    if fmt == "tacos":
        return convert_tacos(path, qid_start)
    if fmt == "anet":
        return convert_anet(path, qid_start)
    if fmt == "ego4d":
        return convert_ego4d(path)
    if fmt == "mad":
        return convert_mad(path)
    raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
