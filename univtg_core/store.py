"""The feature store: one place and one interface for every array of features we compute or read back.

Indexing (a video's clip features, keyed by its content hash, the encoder and the clip length), training
extraction (`<out>/vid_clip`, `<out>/txt_clip`: entries named by vid and qid) and the trainer's reader all go
through `FeatureStore`:

- `put(name, arrays)` writes a whole entry atomically; `writer(name, dim, total)` streams one in chunks:
  rows are appended as they are computed, with a journal of how many are in and each chunk's sha256, so an
  interrupted write resumes where it stopped (`writer.rows`) and a crash never leaves anything that reads as
  complete. Only `complete()` (every row in, checksums verified on disk) marks the entry complete.
- `get(name)` returns a complete entry with its arrays memory-mapped (read-only), after checking sizes and
  the sha256 of the data (once per process and file version): a truncated or corrupted entry is removed and
  reported as absent, so the caller rebuilds it. `list()`, `remove(name)`, `prune(...)`.
- Writers of one entry are serialised by a lock file (`fcntl.flock`), files are replaced atomically
  (`os.replace`), and a full disk raises `StoreFullError` after removing the partial entry.
- `content_hash(path)` is the sha256 of a file's bytes, remembered in a manifest by (path, size,
  modification time, inode), so an unchanged file is hashed once, not on every query.

Layout under the root: `store.json` (format marker), `manifest.json`, `entries/<name>/meta.json` and one
`<array>.npy` per array (`journal` while partial), `locks/<name>.lock`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from .errors import StoreError, StoreFullError
from .hashing import file_sha256

logger = logging.getLogger(__name__)

FORMAT = "univtg-feature-store"
VERSION = 1
STREAMED = "features"  # the array a writer streams
HEADER_BYTES = 128  # fixed .npy header of streamed arrays, so the shape can be rewritten in place
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_verified: dict[tuple, bool] = {}  # (path, size, mtime_ns, inode) -> checksum matched, this process
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class EntryInfo:
    """What `list()` tells about an entry without reading its data."""

    name: str
    status: str  # "complete" or "partial"
    rows: int  # rows of the streamed array in (all of them when complete)
    total: int | None  # rows expected (None: unknown until complete)
    nbytes: int  # bytes on disk
    created: float
    used: float  # last read or write (seconds since the epoch)
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A complete entry: its arrays memory-mapped read-only, and the metadata it was written with."""

    name: str
    arrays: Mapping[str, np.ndarray]
    meta: dict

    @property
    def features(self) -> np.ndarray:
        return self.arrays[STREAMED]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def entry_name(*parts: Any) -> str:
    """A stable, file-system-safe entry name from any key parts (a content hash, an encoder, a clip length)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]


class FeatureStore:
    """Arrays by entry name under one folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, create: bool = True):
        self.root = Path(root).expanduser()
        marker = self.root / "store.json"
        if not marker.is_file():
            if not create:
                raise StoreError(f"{self.root} is not a feature store (no store.json)")
            try:
                for sub in ("entries", "locks"):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
                if not marker.is_file():
                    _write_json_atomic(marker, {"format": FORMAT, "version": VERSION})
            except OSError as exc:
                raise _store_error(exc, f"cannot create the feature store at {self.root}") from exc
        else:
            found = _read_json(marker)
            if not isinstance(found, dict) or found.get("format") != FORMAT or found.get("version") != VERSION:
                raise StoreError(f"{self.root} holds a feature store of another format or version ({found}); "
                                 f"use another folder")
        self._manifest_cache: tuple[tuple, dict] | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    @staticmethod
    def is_store(path: str | os.PathLike) -> bool:
        """Whether a folder is a feature store (the training reader tells stores from official layouts)."""
        return (Path(path) / "store.json").is_file()

    # -- names and paths -------------------------------------------------------------------------------
    @staticmethod
    def _folder_name(name: str) -> str:
        name = str(name)
        if not name:
            raise ValueError("an entry name must not be empty")
        return name if _SAFE_NAME.fullmatch(name) else "~" + quote(name, safe="")

    def _dir(self, name: str) -> Path:
        return self.root / "entries" / self._folder_name(name)

    def _lock_path(self, name: str) -> Path:
        return self.root / "locks" / f"{self._folder_name(name)}.lock"

    @contextlib.contextmanager
    def lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock on one entry across processes and threads; yields False when `blocking` is False
        and another holder has it."""
        path = self._lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            got = _flock(handle, blocking)
            try:
                yield got
            finally:
                if got:
                    _funlock(handle)

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, name: str, verify: bool = True) -> Entry | None:
        """The complete entry, memory-mapped; None when absent, partial, or damaged (then removed)."""
        folder = self._dir(name)
        meta = _read_json(folder / "meta.json")
        if not isinstance(meta, dict) or meta.get("status") != "complete":
            return None
        try:
            arrays = {key: self._open_array(folder, key, spec, verify) for key, spec in meta["arrays"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("feature store entry %s is damaged (%s); it is removed and will be rebuilt", name, exc)
            self._remove_damaged(name, folder)
            return None
        _touch(folder / "used")
        return Entry(str(name), arrays, dict(meta.get("meta") or {}))

    @staticmethod
    def _open_array(folder: Path, key: str, spec: dict, verify: bool) -> np.ndarray:
        path = folder / f"{key}.npy"
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if list(array.shape) != list(spec["shape"]) or array.dtype.str != spec["dtype"]:
            raise ValueError(f"{key}: shape {array.shape} {array.dtype.str}, expected {spec['shape']} {spec['dtype']}")
        if verify:
            st = path.stat()
            token = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, spec["sha256"])
            with _verified_lock:
                known = _verified.get(token)
            if not known:
                if _array_sha256(array) != spec["sha256"]:
                    raise ValueError(f"{key}: checksum mismatch (the data changed on disk)")
                with _verified_lock:
                    _verified[token] = True
        return array

    def info(self, name: str) -> EntryInfo | None:
        folder = self._dir(name)
        meta = _read_json(folder / "meta.json")
        return self._describe(str(name), folder, meta) if isinstance(meta, dict) else None

    def list(self) -> list[EntryInfo]:
        """Every entry (complete and partial), most recently used first."""
        found = []
        entries = self.root / "entries"
        if not entries.is_dir():
            return []
        for folder in entries.iterdir():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            meta = _read_json(folder / "meta.json")
            if not isinstance(meta, dict):
                continue
            name = meta.get("name") or (unquote(folder.name[1:]) if folder.name.startswith("~") else folder.name)
            found.append(self._describe(str(name), folder, meta))
        return sorted(found, key=lambda e: -e.used)

    @staticmethod
    def _describe(name: str, folder: Path, meta: dict) -> EntryInfo:
        nbytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        arrays = meta.get("arrays") or {}
        spec = arrays.get(STREAMED) or next(iter(arrays.values()), {})
        if meta.get("status") == "complete":
            rows = int(spec["shape"][0]) if spec and spec["shape"] else 0
        else:
            rows = _journal_rows(folder)
        # last use: a read touches `used`; a writer's journal moves while it writes
        used = next((p.stat().st_mtime for p in (folder / "used", folder / "journal", folder / "meta.json")
                     if p.exists()), float(meta.get("created", 0)))
        total = meta.get("total")
        return EntryInfo(name=name, status=str(meta.get("status")), rows=rows,
                         total=int(total) if total is not None else None, nbytes=nbytes,
                         created=float(meta.get("created", 0)), used=used, meta=dict(meta.get("meta") or {}))

    # -- writing ---------------------------------------------------------------------------------------
    def put(self, name: str, arrays: Mapping[str, np.ndarray] | np.ndarray, meta: dict | None = None) -> Entry:
        """Write a whole entry at once (replacing any), atomically: readers see the old entry or the new one."""
        if isinstance(arrays, np.ndarray):
            arrays = {STREAMED: arrays}
        folder = self._dir(name)
        with self.lock(name):
            staging = self.root / "entries" / f".new-{uuid.uuid4().hex}"
            try:
                staging.mkdir(parents=True)
                specs = {}
                for key, value in arrays.items():
                    if not re.fullmatch(r"[A-Za-z0-9_]+", key):
                        raise ValueError(f"array names are letters, digits and _; got {key!r}")
                    value = np.ascontiguousarray(value)
                    if value.dtype == object:
                        raise ValueError(f"{key}: object arrays are not stored")
                    with open(staging / f"{key}.npy", "wb") as handle:
                        np.save(handle, value, allow_pickle=False)
                        handle.flush()
                        os.fsync(handle.fileno())
                    specs[key] = {"shape": list(value.shape), "dtype": value.dtype.str, "sha256": _array_sha256(value)}
                now = time.time()
                _write_json_atomic(staging / "meta.json", {"version": VERSION, "name": str(name), "status": "complete",
                                                           "arrays": specs, "meta": dict(meta or {}),
                                                           "created": now, "total": _rows_of(specs)})
                (staging / "used").touch()
                self._replace_dir(folder, staging)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise _store_error(exc, f"cannot write entry {name!r} to the feature store at {self.root}") from exc
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        entry = self.get(name, verify=False)
        if entry is None:
            raise StoreError(f"entry {name!r} could not be read back from {self.root}")
        return entry

    def writer(self, name: str, dim: int, total: int | None = None, meta: dict | None = None,
               dtype: str | np.dtype = "float32") -> EntryWriter:
        """A resumable chunked writer of the entry's streamed (rows, dim) array; use it as a context manager
        (it holds the entry's lock until it is closed)."""
        return EntryWriter(self, str(name), int(dim), total, dict(meta or {}), np.dtype(dtype))

    # -- removing --------------------------------------------------------------------------------------
    def remove(self, name: str) -> bool:
        """Remove an entry (waiting for its writer, if any); False when there was none."""
        with self.lock(name):
            return self._discard(self._dir(name))

    def _remove_damaged(self, name: str, folder: Path) -> None:
        with self.lock(name, blocking=False) as got:
            if got:
                self._discard(folder)

    def _discard(self, folder: Path) -> bool:
        if not folder.exists():
            return False
        trash = self.root / "entries" / f".trash-{uuid.uuid4().hex}"
        try:
            os.replace(folder, trash)  # readers see it gone at once; open memory maps stay valid
        except OSError:
            trash = folder
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _replace_dir(self, folder: Path, staging: Path) -> None:
        if folder.exists():
            self._discard(folder)
        os.replace(staging, folder)

    def prune(self, older_than: float | None = None, max_bytes: int | None = None,
              partial_older_than: float | None = 24 * 3600.0, dry_run: bool = False) -> list[EntryInfo]:
        """Remove entries not used for `older_than` seconds, then the least recently used ones until the store
        holds at most `max_bytes`; partial entries (an interrupted index) go after `partial_older_than`.
        Entries being written are skipped. Returns what was (or, with `dry_run`, would be) removed."""
        now = time.time()
        entries = self.list()
        doomed: list[EntryInfo] = []
        for e in entries:
            limit = partial_older_than if e.status != "complete" else older_than
            if limit is not None and now - e.used > limit:
                doomed.append(e)
        if max_bytes is not None:
            kept = [e for e in entries if e not in doomed]
            size = sum(e.nbytes for e in kept)
            for e in sorted(kept, key=lambda e: e.used):
                if size <= max_bytes:
                    break
                doomed.append(e)
                size -= e.nbytes
        removed = []
        for e in doomed:
            if dry_run:
                removed.append(e)
                continue
            with self.lock(e.name, blocking=False) as got:
                if got and self._discard(self._dir(e.name)):
                    removed.append(e)
        if not dry_run:
            self._prune_manifest()
            for leftover in (self.root / "entries").glob(".*"):  # staging or trash of a killed process
                if now - leftover.stat().st_mtime > 3600:
                    shutil.rmtree(leftover, ignore_errors=True)
        return removed

    def size(self) -> int:
        return sum(e.nbytes for e in self.list())

    # -- content hashes --------------------------------------------------------------------------------
    def content_hash(self, path: str | os.PathLike) -> str:
        """sha256 of the file's bytes, hashed again only when its size, modification time or inode changed."""
        path = Path(path)
        st = path.stat()
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        known = self._manifest().get(key)
        if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
            return known["sha256"]
        digest = file_sha256(path)
        try:
            with self.lock(".manifest"):
                manifest = self._manifest(fresh=True)
                manifest[key] = {"stamp": stamp, "sha256": digest, "seen": time.time()}
                _write_json_atomic(self.root / "manifest.json", manifest)
        except OSError as exc:  # the hash is right; only remembering it failed
            logger.warning("could not update the store manifest (%s); the file will be hashed again next time", exc)
        return digest

    def _manifest(self, fresh: bool = False) -> dict:
        path = self.root / "manifest.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if not fresh and self._manifest_cache is not None and self._manifest_cache[0] == stamp:
            return self._manifest_cache[1]
        data = _read_json(path)
        data = data if isinstance(data, dict) else {}
        self._manifest_cache = (stamp, data)
        return dict(data) if fresh else data

    def _prune_manifest(self) -> None:
        with self.lock(".manifest"):
            manifest = self._manifest(fresh=True)
            kept = {k: v for k, v in manifest.items() if os.path.exists(k)}
            if len(kept) != len(manifest):
                _write_json_atomic(self.root / "manifest.json", kept)


class EntryWriter:
    """Streams the rows of one entry to disk, resumably (see `FeatureStore.writer`).

    `rows` is how many rows are already in (from an earlier, interrupted write when resuming); `append`
    adds the next ones; `complete()` checks that every row is in and marks the entry complete. When the entry
    was completed by another process while this one waited for the lock, `entry` holds it and nothing is to
    be written. Leaving the context without `complete()` keeps a partial entry to resume, except after a
    full disk or `abort()`, which remove it.
    """

    def __init__(self, store: FeatureStore, name: str, dim: int, total: int | None, meta: dict, dtype: np.dtype):
        self.store, self.name, self.dim, self.total, self.meta, self.dtype = store, name, dim, total, meta, dtype
        self.folder = store._dir(name)
        self.rows = 0
        self.entry: Entry | None = None
        self._lock_cm = None
        self._data = None
        self._journal = None
        self._row_bytes = dim * dtype.itemsize

    # -- context ---------------------------------------------------------------------------------------
    def __enter__(self) -> EntryWriter:
        self._lock_cm = self.store.lock(self.name, blocking=False)
        if not self._lock_cm.__enter__():
            self._lock_cm.__exit__(None, None, None)
            logger.info("waiting for another process that is writing %s", self.name)
            self._lock_cm = self.store.lock(self.name)
            self._lock_cm.__enter__()
        try:
            self.entry = self.store.get(self.name)
            if self.entry is None:
                self._open()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close_files()
        self._release()

    def _release(self) -> None:
        if self._lock_cm is not None:
            self._lock_cm.__exit__(None, None, None)
            self._lock_cm = None

    # -- opening / resuming ----------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {"dim": self.dim, "dtype": self.dtype.str, "total": self.total, "meta": self.meta}

    def _open(self) -> None:
        meta = _read_json(self.folder / "meta.json")
        resumable = (isinstance(meta, dict) and meta.get("status") == "partial"
                     and meta.get("settings") == json.loads(json.dumps(self._settings())))
        try:
            if resumable:
                self.rows = self._recover()
            else:
                if self.folder.exists():
                    self.store._discard(self.folder)
                self.folder.mkdir(parents=True)
                _write_json_atomic(self.folder / "meta.json", {
                    "version": VERSION, "name": self.name, "status": "partial", "settings": self._settings(),
                    "meta": self.meta, "created": time.time(), "total": self.total})
                with open(self.folder / f"{STREAMED}.npy", "wb") as handle:
                    handle.write(_npy_header(self.dtype, (0, self.dim)))
                (self.folder / "journal").write_bytes(b"")
                self.rows = 0
            self._data = open(self.folder / f"{STREAMED}.npy", "r+b")
            self._journal = open(self.folder / "journal", "ab")
        except OSError as exc:
            self._fail(exc)
        if self.rows:
            logger.info("%s: resuming after %d rows already in the store", self.name, self.rows)

    def _recover(self) -> int:
        """Rows of a partial entry that the journal lists and whose checksums still match; the rest is cut."""
        data_path, journal = self.folder / f"{STREAMED}.npy", self.folder / "journal"
        good, kept_lines = 0, []
        try:
            lines = journal.read_bytes().split(b"\n")
        except FileNotFoundError:
            lines = []
        with open(data_path, "rb") as handle:
            for line in lines[:-1]:  # the last piece is empty or a line torn by a kill
                try:
                    start, count, digest = line.decode().split()
                    start, count = int(start), int(count)
                except ValueError:
                    break
                if start != good:
                    break
                handle.seek(HEADER_BYTES + start * self._row_bytes)
                chunk = handle.read(count * self._row_bytes)
                if len(chunk) != count * self._row_bytes or hashlib.sha256(chunk).hexdigest() != digest:
                    logger.warning("%s: rows from %d on are damaged; they are computed again", self.name, start)
                    break
                good += count
                kept_lines.append(line)
        with open(data_path, "r+b") as handle:
            handle.truncate(HEADER_BYTES + good * self._row_bytes)
        with open(journal, "wb") as handle:
            handle.write(b"".join(line + b"\n" for line in kept_lines))
        return good

    # -- writing ---------------------------------------------------------------------------------------
    def append(self, rows: np.ndarray) -> None:
        """Add the next rows ((n, dim), converted to the entry's dtype) after the ones already in."""
        if self.entry is not None:
            raise StoreError(f"entry {self.name!r} is already complete")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must be (n, {self.dim}); got {rows.shape}")
        if self.total is not None and self.rows + len(rows) > self.total:
            raise StoreError(f"entry {self.name!r}: {self.rows + len(rows)} rows written, {self.total} expected")
        data = rows.tobytes()
        try:
            self._data.seek(HEADER_BYTES + self.rows * self._row_bytes)
            self._data.write(data)
            self._data.flush()
            self._journal.write(f"{self.rows} {len(rows)} {hashlib.sha256(data).hexdigest()}\n".encode())
            self._journal.flush()
        except OSError as exc:
            self._fail(exc)
        self.rows += len(rows)

    def complete(self) -> Entry:
        """Verify every row on disk against the journal, fix the shape, mark the entry complete, return it."""
        if self.entry is not None:
            return self.entry
        if self.total is not None and self.rows != self.total:
            raise StoreError(f"entry {self.name!r} has {self.rows} of {self.total} rows; it stays partial")
        try:
            self._data.seek(0)
            self._data.write(_npy_header(self.dtype, (self.rows, self.dim)))
            self._data.flush()
            os.fsync(self._data.fileno())
            self._close_files()
            if self.rows != self._recover():
                raise StoreError(f"entry {self.name!r}: the rows on disk do not match what was written; write it "
                                 f"again")
            array = np.load(self.folder / f"{STREAMED}.npy", mmap_mode="r", allow_pickle=False)
            spec = {"shape": [self.rows, self.dim], "dtype": self.dtype.str, "sha256": _array_sha256(array)}
            del array
            meta = _read_json(self.folder / "meta.json") or {}
            meta.update({"status": "complete", "arrays": {STREAMED: spec}, "total": self.rows,
                         "completed": time.time()})
            meta.pop("settings", None)
            _write_json_atomic(self.folder / "meta.json", meta)
            (self.folder / "used").touch()
            (self.folder / "journal").unlink(missing_ok=True)
        except OSError as exc:
            self._fail(exc)
        entry = self.store.get(self.name, verify=False)
        if entry is None:
            raise StoreError(f"entry {self.name!r} could not be read back from {self.store.root}")
        self.entry = entry
        return entry

    def abort(self) -> None:
        """Remove the partial entry (the source is broken: resuming would only fail again)."""
        self._close_files()
        self.store._discard(self.folder)

    def _fail(self, exc: OSError):
        self._close_files()
        if exc.errno in _FULL_DISK:
            self.store._discard(self.folder)
        raise _store_error(exc, f"cannot write entry {self.name!r} to the feature store at {self.store.root} "
                                f"after {self.rows} rows") from exc

    def _close_files(self) -> None:
        for handle in (self._data, self._journal):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._data = self._journal = None


# ---------------------------------------------------------------------------------------------- helpers
def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """A version 1.0 .npy header padded to HEADER_BYTES, so that a longer shape can overwrite it in place."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
    body = text.encode("latin1")
    pad = HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", HEADER_BYTES - 10) + body + b" " * pad + b"\n"


def _array_sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    step = 1 << 24
    for start in range(0, flat.size, step):
        digest.update(flat[start:start + step])
    return digest.hexdigest()


def _rows_of(specs: dict) -> int | None:
    spec = specs.get(STREAMED)
    return int(spec["shape"][0]) if spec and spec["shape"] else None


def _journal_rows(folder: Path) -> int:
    try:
        lines = (folder / "journal").read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return 0
    rows = 0
    for line in lines:
        try:
            rows += int(line.split()[1])
        except (IndexError, ValueError):
            break
    return rows


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()


def _store_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in _FULL_DISK:
        return StoreFullError(f"{what}: no space left ({exc.strerror or exc}); the partial entry was removed. Free "
                              f"space, prune the store (python -m univtg_core cache prune --max-size 2GB), use "
                              f"another --cache-dir, or run with --no-cache")
    return StoreError(f"{what}: {exc.strerror or exc}")


try:  # POSIX
    import fcntl

    def _flock(handle, blocking: bool) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def _funlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
except ImportError:  # Windows: a byte-range lock on the lock file
    import msvcrt

    def _flock(handle, blocking: bool) -> bool:
        while True:
            try:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.1)

    def _funlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


__all__ = ["Entry", "EntryInfo", "EntryWriter", "FeatureStore", "entry_name"]
