"""Annotations and features in UniVTG's layout -> batches with exactly the official targets.

Layout (main/dataset.py, DatasetMR):
- annotations: jsonl, one query per line: qid, query, vid, duration, relevant_windows [[start, end], ...] in
  seconds, optionally relevant_clip_ids + saliency_scores (a curve). A line may name its own query-feature
  folder in `t_feat_dir` (relative to the jsonl), which the CLIP teacher uses for its concept features.
- video features: <dir>/<vid>.npz with key `features` (L, D); several dirs are concatenated along D after
  each is L2-normalised, cut to the shortest. A path ending in .h5/.hdf5 is read as a file keyed by vid.
- query features: <t_feat_dir>/<qid>.npz (UniVTG) or qid<qid>.npz (Moment-DETR, Lighthouse), key
  `last_hidden_state` (T, D) per token; or an .h5 file keyed by qid.
- either folder may instead be a feature store (`univtg_core.store`, what `training.extract` writes):
  entries named by vid (array `features`) and by qid (`last_hidden_state`, `pooler_output`), memory-mapped;
  or an LMDB environment (a folder with `data.mdb`, CONE's and RGNet's `offline_lmdb` layout: each entry an
  .npz by vid / qid; needs the `lmdb` package), read without unpickling.

Unlike the official loader, a missing or unreadable file raises `DataError` naming it (the official one
logs and trains on zeros), and all files are checked before training starts.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UniVTGError
from ..postprocess import l2_normalize, tef
from .labels import make_clip_labels

logger = logging.getLogger(__name__)

H5_SUFFIXES = (".h5", ".hdf5")


class DataError(UniVTGError):
    """An annotation or feature file is missing, unreadable or inconsistent."""


def load_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Annotation records (the evaluation's reader); errors name the file and line, as a DataError."""
    from ..evaluation.qvhighlights import load_jsonl as read_records

    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        records = read_records(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    for record in records:
        if "t_feat_dir" in record and not os.path.isabs(record["t_feat_dir"]):
            record["t_feat_dir"] = str(path.parent / record["t_feat_dir"])
    return records


def save_jsonl(records: Iterable[dict], path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    tmp.replace(path)


def check_records(records: Sequence[dict], source: str, need_labels: bool, need_qid: bool = True) -> None:
    """Every record has the keys training needs; errors name the source and the qid."""
    required = ("qid",) * need_qid + ("vid",) + ("relevant_windows",) * need_labels
    for i, record in enumerate(records):
        missing = [k for k in required if k not in record]
        if missing:
            raise DataError(f"{source}: record {i} (qid {record.get('qid')!r}) lacks {', '.join(missing)}")
        if need_labels:
            windows = record["relevant_windows"]
            if not windows or any(len(w) != 2 or float(w[1]) < float(w[0]) for w in windows):
                raise DataError(f"{source}: qid {record['qid']!r} has invalid relevant_windows {windows!r}; "
                                "expected [[start, end], ...] in seconds with start <= end")


class _LRU:
    """A byte-budgeted in-memory cache (per process; DataLoader workers each keep their own)."""

    def __init__(self, budget_mb: float):
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.items: OrderedDict[Any, np.ndarray] = OrderedDict()

    def get(self, key: Any) -> np.ndarray | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: Any, value: np.ndarray) -> None:
        if self.budget <= 0 or value.nbytes > self.budget:
            return
        self.items[key] = value
        self.used += value.nbytes
        while self.used > self.budget:
            _, old = self.items.popitem(last=False)
            self.used -= old.nbytes


_LMDB_ENVS: dict[tuple[int, str], Any] = {}


class FeatureStore:
    """Reads (and caches) L2-normalised video features and query token features.

    Args:
        v_feat_dirs: folders of <vid>.npz (key `features`), .h5 files, or feature stores (entries named by
            vid); concatenated along the feature axis.
        t_feat_dir: folder of <qid>.npz / qid<qid>.npz (key `last_hidden_state`), an .h5 file, or a feature
            store (entries named by qid).
        normalize_video / normalize_text: the official L2 normalisation (x / (||x|| + 1e-5)) per row.
        cache_mb: in-memory cache budget; `preload` reads everything up front instead.
    """

    def __init__(self, v_feat_dirs: Sequence[str], t_feat_dir: str | None, normalize_video: bool = True,
                 normalize_text: bool = True, cache_mb: float = 2048):
        self.v_feat_dirs = [str(d) for d in v_feat_dirs]
        self.t_feat_dir = None if t_feat_dir is None else str(t_feat_dir)
        self.normalize_video = normalize_video
        self.normalize_text = normalize_text
        self._cache = _LRU(cache_mb)
        self._h5: dict[tuple[int, str], Any] = {}
        self._stores: dict[str, Any] = {}
        for d in self.v_feat_dirs + ([self.t_feat_dir] if self.t_feat_dir else []):
            if not os.path.exists(d):
                raise DataError(f"feature location not found: {d}")

    def __getstate__(self) -> dict:  # h5 handles do not cross process boundaries (LMDB ones are per process)
        state = dict(self.__dict__)
        state["_h5"] = {}
        return state

    @staticmethod
    def is_lmdb(path: str | None) -> bool:
        return bool(path) and os.path.isdir(path) and os.path.isfile(os.path.join(path, "data.mdb"))

    @staticmethod
    def _lmdb_env(path: str):
        """One read-only environment per process and folder, shared by every store (py-lmdb refuses to open
        an environment twice in a process)."""
        key = (os.getpid(), os.path.realpath(path))
        if key not in _LMDB_ENVS:
            try:
                import lmdb
            except ImportError:
                raise DataError(f"{path} is an LMDB folder: pip install lmdb to read it") from None
            try:
                _LMDB_ENVS[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, max_readers=1024)
            except lmdb.Error as exc:
                raise DataError(f"cannot open the LMDB features {path}: {exc}") from exc
        return _LMDB_ENVS[key]

    def _lmdb_has(self, path: str, key: str) -> bool:
        with self._lmdb_env(path).begin() as txn:
            return txn.get(str(key).encode()) is not None

    def _read_lmdb(self, path: str, key: str, field: str) -> np.ndarray:
        """An entry holding .npz bytes (or one .npy array); np.load without pickles."""
        with self._lmdb_env(path).begin() as txn:
            raw = txn.get(str(key).encode())
        if raw is None:
            raise DataError(f"{path} has no entry {key!r}")
        try:
            loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any decoding error means an unreadable entry
            raise DataError(f"{path}[{key!r}] is not an .npz / .npy entry: {type(exc).__name__}: {exc}") from exc
        if isinstance(loaded, np.ndarray):
            return np.asarray(loaded, dtype=np.float32)
        with loaded as data:
            if field not in data.files:
                raise DataError(f"{path}[{key!r}] has no {field!r} (has {data.files})")
            return np.asarray(data[field], dtype=np.float32)

    # -- raw access ------------------------------------------------------------------------------------
    def _h5file(self, path: str):
        key = (os.getpid(), path)
        if key not in self._h5:
            import h5py

            try:
                self._h5[key] = h5py.File(path, "r")
            except OSError as exc:
                raise DataError(f"cannot open feature file {path}: {exc}") from exc
        return self._h5[key]

    def _read_h5(self, path: str, key: str, field: str) -> np.ndarray:
        f = self._h5file(path)
        if key not in f:
            raise DataError(f"{path} has no entry {key!r}")
        node = f[key]
        if hasattr(node, "keys"):
            if field not in node:
                raise DataError(f"{path}[{key!r}] has no {field!r} (has {sorted(node.keys())})")
            node = node[field]
        return np.asarray(node[()], dtype=np.float32)

    @staticmethod
    def _read_npz(path: str, field: str) -> np.ndarray:
        try:
            with np.load(path, allow_pickle=False) as data:
                if field not in data.files:
                    raise DataError(f"{path} has no {field!r} array (has {data.files})")
                return np.asarray(data[field], dtype=np.float32)
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"feature file not found: {path}") from None
        except Exception as exc:  # noqa: BLE001 - zip/pickle/value errors all mean an unreadable file
            raise DataError(f"cannot read feature file {path}: {type(exc).__name__}: {exc}") from exc

    def _store(self, feat_dir: str | None):
        """The feature store at `feat_dir`, or None for the official layouts (.npz folders, .h5 files)."""
        if feat_dir is None:
            return None
        if feat_dir not in self._stores:
            from ..store import FeatureStore as Store

            self._stores[feat_dir] = Store(feat_dir, create=False) if Store.is_store(feat_dir) else None
        return self._stores[feat_dir]

    def _read_store(self, feat_dir: str, name: str, field: str) -> np.ndarray:
        entry = self._store(feat_dir).get(name)
        if entry is None:
            raise DataError(f"{feat_dir}: the feature store has no complete entry {name!r} (missing, interrupted "
                            f"or damaged: extract it again)")
        if field not in entry.arrays:
            raise DataError(f"{feat_dir}[{name!r}] has no {field!r} (has {sorted(entry.arrays)})")
        return np.asarray(entry[field], dtype=np.float32)

    def video_path(self, feat_dir: str, vid: str) -> str:
        return feat_dir if feat_dir.endswith(H5_SUFFIXES) else os.path.join(feat_dir, f"{vid}.npz")

    def query_path(self, qid: Any, feat_dir: str | None = None) -> str:
        feat_dir = feat_dir or self.t_feat_dir
        if feat_dir is None:
            raise DataError("no query feature folder given (--t_feat_dir)")
        if feat_dir.endswith(H5_SUFFIXES):
            return feat_dir
        plain = os.path.join(feat_dir, f"{qid}.npz")
        if os.path.exists(plain):
            return plain
        prefixed = os.path.join(feat_dir, f"qid{qid}.npz")
        return prefixed if os.path.exists(prefixed) else plain

    def read_video_dir(self, feat_dir: str, vid: str, normalize: bool | None = None) -> np.ndarray:
        """One folder's (L, D) features of a video, normalised unless told otherwise."""
        path = self.video_path(feat_dir, vid)
        if self._store(feat_dir) is not None:
            feats = self._read_store(feat_dir, str(vid), "features")
        elif self.is_lmdb(feat_dir):
            feats = self._read_lmdb(feat_dir, str(vid), "features")
        elif path.endswith(H5_SUFFIXES):
            feats = self._read_h5(path, str(vid), "features")
        else:
            feats = self._read_npz(path, "features")
        if feats.ndim != 2 or len(feats) == 0:
            raise DataError(f"{path}: expected features of shape (clips, dim), got {feats.shape}")
        if self.normalize_video if normalize is None else normalize:
            feats = l2_normalize(feats)
        return feats

    # -- public ----------------------------------------------------------------------------------------
    def dir_features(self, feat_dir: str, vid: str) -> np.ndarray:
        """One folder's normalised (L, D) features of a video, cached (language-free candidates)."""
        key = ("d", feat_dir, vid)
        cached = self._cache.get(key)
        if cached is None:
            cached = self.read_video_dir(feat_dir, vid)
            self._cache.put(key, cached)
        return cached

    def video(self, vid: str) -> np.ndarray:
        """(L, D) features of a video, each dir normalised, concatenated, cut to the shortest."""
        key = ("v", vid)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        parts = [self.read_video_dir(d, vid) for d in self.v_feat_dirs]
        n = min(len(p) for p in parts)
        feats = np.ascontiguousarray(np.concatenate([p[:n] for p in parts], axis=1), dtype=np.float32)
        self._cache.put(key, feats)
        return feats

    def _window_source(self, vid: str):
        """The array-like (h5 dataset or memory-mapped store array) rows can be sliced from without reading the
        whole video; None where only whole reads are possible (npz, LMDB, several folders, a cached copy)."""
        if len(self.v_feat_dirs) != 1 or self._cache.get(("v", vid)) is not None:
            return None
        feat_dir = self.v_feat_dirs[0]
        if self._store(feat_dir) is not None:
            entry = self._store(feat_dir).get(str(vid))
            return None if entry is None or "features" not in entry.arrays else entry["features"]
        if feat_dir.endswith(H5_SUFFIXES):
            f = self._h5file(feat_dir)
            node = f[str(vid)] if str(vid) in f else None
            if node is not None and hasattr(node, "keys"):
                node = node["features"] if "features" in node else None
            return node if node is not None and len(node.shape) == 2 else None
        return None

    def video_length(self, vid: str, step: int = 1) -> int:
        """Rows of `video(vid)[::step]`, without reading the features where the layout allows."""
        source = self._window_source(str(vid))
        n = source.shape[0] if source is not None else len(self.video(str(vid)))
        return -(-int(n) // int(step))

    def video_window(self, vid: str, start: int, end: int, step: int = 1) -> np.ndarray:
        """`video(vid)[::step][start:end]`, reading only those rows from an .h5 file or a feature store (long
        videos: a window costs a window, not a movie)."""
        source = self._window_source(str(vid))
        if source is None:
            return self.video(str(vid))[::step][start:end]
        rows = np.asarray(source[start * step:end * step:step], dtype=np.float32)
        return l2_normalize(rows) if self.normalize_video else rows

    def query(self, qid: Any, field: str = "last_hidden_state", feat_dir: str | None = None) -> np.ndarray:
        """(T, D) query token features (or a (1, D) sentence feature for field='pooler_output')."""
        key = ("q", feat_dir, qid, field)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        path = self.query_path(qid, feat_dir)
        if self._store(feat_dir or self.t_feat_dir) is not None:
            feats = self._read_store(feat_dir or self.t_feat_dir, str(qid), field)
        elif self.is_lmdb(feat_dir or self.t_feat_dir):
            feats = self._read_lmdb(feat_dir or self.t_feat_dir, str(qid), field)
        elif path.endswith(H5_SUFFIXES):
            feats = self._read_h5(path, str(qid), field)
        else:
            feats = self._read_npz(path, field)
        if feats.ndim == 1:
            feats = feats[None]
        if feats.ndim != 2 or len(feats) == 0:
            raise DataError(f"{path}: expected {field} of shape (tokens, dim), got {feats.shape}")
        if self.normalize_text:
            feats = l2_normalize(feats)
        self._cache.put(key, feats)
        return feats

    def missing_files(self, records: Sequence[dict], queries: bool = True) -> list[str]:
        """Feature files the records need that do not exist (cheap existence checks, no reads)."""
        missing: list[str] = []
        seen: set = set()
        for record in records:
            vid = str(record["vid"])
            for d in self.v_feat_dirs:
                if (d, vid) in seen:
                    continue
                seen.add((d, vid))
                path = self.video_path(d, vid)
                store = self._store(d)
                if store is not None:
                    info = store.info(vid)
                    if info is None or info.status != "complete":
                        missing.append(f"{d}[{vid!r}]")
                elif self.is_lmdb(d):
                    if not self._lmdb_has(d, vid):
                        missing.append(f"{d}[{vid!r}]")
                elif path.endswith(H5_SUFFIXES):
                    if vid not in self._h5file(path):
                        missing.append(f"{path}[{vid!r}]")
                elif not os.path.exists(path):
                    missing.append(path)
            if not queries:
                continue
            feat_dir = record.get("t_feat_dir") or self.t_feat_dir
            store = self._store(feat_dir)
            if store is not None:
                info = store.info(str(record["qid"]))
                if info is None or info.status != "complete":
                    missing.append(f"{feat_dir}[{record['qid']!r}]")
                continue
            if self.is_lmdb(feat_dir):
                if not self._lmdb_has(feat_dir, str(record["qid"])):
                    missing.append(f"{feat_dir}[{record['qid']!r}]")
                continue
            path = self.query_path(record["qid"], feat_dir)
            if path.endswith(H5_SUFFIXES):
                if str(record["qid"]) not in self._h5file(path):
                    missing.append(f"{path}[{record['qid']!r}]")
            elif not os.path.exists(path):
                missing.append(path)
        return missing

    def preload(self, records: Sequence[dict], queries: bool = True, progress: bool = True) -> None:
        """Read every feature once (--use_cache > 0); the cache budget is lifted for this."""
        from tqdm import tqdm

        self._cache.budget = max(self._cache.budget, 2**62)
        for record in tqdm(records, desc="preload features", disable=not progress):
            self.video(str(record["vid"]))
            if queries:
                self.query(record["qid"], feat_dir=record.get("t_feat_dir"))


def raise_if_missing(store: FeatureStore, records: Sequence[dict], source: str, queries: bool = True) -> None:
    missing = store.missing_files(records, queries)
    if missing:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{len(missing)} feature file(s) needed by {source} are missing:\n  {shown}{more}")


def infer_clip_length(records: Sequence[dict], store: FeatureStore, sample: int = 64) -> float | None:
    """Seconds per feature row: the median of duration / rows over a sample of videos (None without durations).

    Rounded to the nearest 0.5 s when within 5% of it (feature extractors drop or pad a last partial
    clip), else to 0.01 s.
    """
    ratios = []
    seen = set()
    for record in records:
        vid = str(record["vid"])
        if vid in seen or "duration" not in record:
            continue
        seen.add(vid)
        ratios.append(float(record["duration"]) / len(store.video(vid)))
        if len(ratios) >= sample:
            break
    if not ratios:
        return None
    median = float(np.median(ratios))
    half = round(median * 2) / 2
    value = half if half > 0 and abs(median - half) <= 0.05 * half else round(median, 2)
    if value <= 0:
        raise DataError(f"cannot infer the clip length (median duration/rows = {median}); pass --clip_length")
    return value


class GroundingDataset(Dataset):
    """One item per query: features plus the official per-clip targets (see labels.make_clip_labels).

    `load_labels=False` (test sets without GT) yields inputs and timestamps only. `query_field` picks the
    query array (`pooler_output` for language-free evaluation, which uses the sentence embedding).
    """

    def __init__(self, records: Sequence[dict], store: FeatureStore, clip_len: float, use_tef: bool = True,
                 use_video: bool = True, max_v_l: int = 75, max_q_l: int | None = None,
                 load_labels: bool = True, dset_name: str | None = None, add_easy_negative: int = 1,
                 easy_negative_only: int = 1, txt_drop_ratio: float = 0.0, v_feat_dim: int | None = None,
                 t_feat_dim: int | None = None, query_field: str = "last_hidden_state"):
        self.records = list(records)
        self.store = store
        self.clip_len = float(clip_len)
        self.use_tef = use_tef
        self.use_video = use_video
        self.max_v_l = max_v_l
        self.max_q_l = max_q_l
        self.load_labels = load_labels
        self.dset_name = dset_name
        self.add_easy_negative = add_easy_negative
        self.easy_negative_only = easy_negative_only
        self.txt_drop_ratio = txt_drop_ratio
        self.v_feat_dim = v_feat_dim
        self.t_feat_dim = t_feat_dim
        self.query_field = query_field

    def __len__(self) -> int:
        return len(self.records)

    def video_features(self, record: dict) -> np.ndarray:
        feats = self.store.video(str(record["vid"]))
        if self.v_feat_dim is not None and feats.shape[1] != self.v_feat_dim:
            paths = ", ".join(self.store.video_path(d, str(record["vid"])) for d in self.store.v_feat_dirs)
            raise DataError(f"video features of {record['vid']!r} ({paths}) are {feats.shape[1]} wide, but "
                            f"v_feat_dim is {self.v_feat_dim}")
        return feats

    def query_features(self, record: dict) -> np.ndarray:
        feats = self.store.query(record["qid"], self.query_field, record.get("t_feat_dir"))
        if self.t_feat_dim is not None and feats.shape[1] != self.t_feat_dim:
            path = self.store.query_path(record["qid"], record.get("t_feat_dir"))
            raise DataError(f"query features {path} are {feats.shape[1]} wide, but t_feat_dim is "
                            f"{self.t_feat_dim}")
        if self.max_q_l is not None:
            feats = feats[: self.max_q_l]
        if self.txt_drop_ratio > 0:
            feats = drop_rows(feats, self.txt_drop_ratio)
        return feats

    def video_input(self, feats: np.ndarray | None, n_clips: int) -> np.ndarray:
        """Video features with the tef columns [i/L, (i+1)/L] appended (or tef alone without video)."""
        if not self.use_tef:
            return feats
        t = tef(n_clips)
        return t if feats is None else np.concatenate([feats, t], axis=1)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        feats = self.video_features(record) if self.use_video else None
        n_clips = len(feats) if feats is not None else self.max_v_l
        item = {
            "meta": record,
            "query_feat": torch.from_numpy(self.query_features(record)),
            "video_feat": torch.from_numpy(np.ascontiguousarray(self.video_input(feats, n_clips))),
        }
        item.update(self.targets(record, n_clips))
        return item

    def targets(self, record: dict, n_clips: int) -> dict:
        from .labels import clip_timestamps

        if not self.load_labels or not record.get("relevant_windows"):
            return {"timestamp": torch.from_numpy(clip_timestamps(n_clips, self.clip_len))}
        labels = make_clip_labels(record, n_clips, self.clip_len, self.dset_name, self.add_easy_negative,
                                  self.easy_negative_only)
        return {
            "timestamp": torch.from_numpy(labels.timestamp),
            "span_labels_nn": torch.from_numpy(labels.span_labels_nn),
            "timestamp_window": torch.from_numpy(labels.timestamp_window),
            "saliency_scores": torch.from_numpy(labels.saliency_scores),
            "saliency_pos_labels": labels.saliency_pos_labels,
            "saliency_neg_labels": labels.saliency_neg_labels,
        }


def drop_rows(feats: np.ndarray, ratio: float) -> np.ndarray:
    """Zero a random `ratio` of the query tokens (official --txt_drop_ratio)."""
    n_drop = round(len(feats) * ratio)
    if n_drop <= 0:
        return feats
    feats = feats.copy()
    feats[np.random.choice(len(feats), size=n_drop, replace=False)] = 0
    return feats


def pad_sequences(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad along the first axis to the longest: (B, Lmax, ...) float32 and a (B, Lmax) float mask."""
    lengths = [len(s) for s in seqs]
    out = torch.zeros((len(seqs), max(lengths)) + tuple(seqs[0].shape[1:]), dtype=torch.float32)
    mask = torch.zeros((len(seqs), max(lengths)), dtype=torch.float32)
    for i, (s, n) in enumerate(zip(seqs, lengths)):
        out[i, :n] = s
        mask[i, :n] = 1
    return out, mask


PADDED_KEYS = ("query_feat", "video_feat", "timestamp", "span_labels_nn", "timestamp_window", "saliency_scores",
               "lf_candidates")


def collate(items: Sequence[dict]) -> tuple[list[dict], dict[str, Any]]:
    """Official start_end_collate_mr: padded (tensor, mask) pairs and LongTensor saliency pair labels."""
    metas = [item["meta"] for item in items]
    batch: dict[str, Any] = {}
    for key in items[0]:
        if key == "meta":
            continue
        values = [item[key] for item in items]
        if key in ("saliency_pos_labels", "saliency_neg_labels"):
            batch[key] = torch.tensor(values, dtype=torch.long)
        elif key in PADDED_KEYS:
            batch[key] = pad_sequences(values)
        else:
            batch[key] = values
    return metas, batch


def prepare_batch(batch: dict, device: torch.device,
                  non_blocking: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Model inputs and criterion targets on `device` (official prepare_batch_inputs_mr)."""
    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=non_blocking)

    inputs = {"src_vid": move(batch["video_feat"][0]), "src_vid_mask": move(batch["video_feat"][1])}
    if "query_feat" in batch:
        inputs["src_txt"] = move(batch["query_feat"][0])
        inputs["src_txt_mask"] = move(batch["query_feat"][1])
    targets = {"timestamp": move(batch["timestamp"][0]), "timestamp_mask": move(batch["timestamp"][1])}
    for key in ("timestamp_window", "span_labels_nn", "saliency_scores"):
        if key in batch:
            targets[key] = move(batch[key][0])
    for key in ("saliency_pos_labels", "saliency_neg_labels"):
        if key in batch:
            targets[key] = move(batch[key])
    if "lf_candidates" in batch:
        targets["lf_candidates"] = move(batch["lf_candidates"][0])
    return inputs, targets


def seed_worker(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """DataLoader worker seeding for numpy (torch and random are seeded by the DataLoader itself)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
