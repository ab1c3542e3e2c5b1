"""A disk budget for a public server: what uploads and outputs may keep on disk, per client and in total.

Gradio's upload route takes files before any queue sees them, and keeps them for hours. `DiskBudget`
bounds that: every folder the app writes to (Gradio's upload and cache folder, the session folders) counts
towards one total, and when a new upload would not fit, the oldest files go first; each client's uploads
count towards a limit of their own, and that client's oldest uploads go first when they reach it. Files a
running query reads or writes are pinned and never removed; other files are safe for `grace` seconds after
they were written (an upload is about to be queried). What cannot be made to fit is refused with a message
(`BudgetExceeded`). Per-session clean-up (`app.session`) and Gradio's own expiry still run as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str | int | float | None) -> int | None:
    """'200mb', '1.5gb', '512MiB', '10000' -> bytes; None, '', '0' or 'none' -> None (no limit)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return int(text) if text > 0 else None
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in ("", "0", "none", "off"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", cleaned)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r}; write e.g. 200mb, 1.5gb or 0 for no limit")
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    return value if value > 0 else None


def format_bytes(size: int | float) -> str:
    """'4.2 MB', '1.5 GB': sizes in messages, in the units the flags take."""
    size = float(size)
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} bytes"


class BudgetExceeded(Exception):
    """An upload that cannot be kept; the message is for the user and `status` the HTTP status to answer."""

    def __init__(self, message: str, status: int = 413):
        super().__init__(message)
        self.status = status


@dataclass
class _Upload:
    path: Path
    size: int
    client: str
    at: float


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    mtime: float


class DiskBudget:
    """Keeps everything under `roots` within `total_bytes`, and each client's uploads within `per_client_bytes`.

    Either limit may be None (no limit). `clock` is injectable for tests.
    """

    def __init__(self, roots: Sequence[str | Path], total_bytes: int | None, per_client_bytes: int | None,
                 grace: float = 120.0, clock: Callable[[], float] = time.time):
        self.roots = [Path(r).resolve() for r in roots]
        self.total_bytes = total_bytes
        self.per_client_bytes = per_client_bytes
        self.grace = float(grace)
        self.clock = clock
        self._lock = threading.RLock()
        self._pins: dict[Path, int] = {}
        self._uploads: dict[Path, _Upload] = {}
        self._reserved = 0

    # -- what is on disk --------------------------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        entries = []
        for root in self.roots:
            for folder, _dirs, files in os.walk(root):
                for name in files:
                    path = Path(folder) / name
                    try:
                        stat = path.lstat()
                    except OSError:
                        continue
                    entries.append(_Entry(path, stat.st_size, stat.st_mtime))
        return entries

    def usage(self) -> int:
        """Bytes under the roots now."""
        return sum(e.size for e in self._entries())

    def client_usage(self, client: str) -> int:
        """Bytes of this client's uploads still on disk."""
        with self._lock:
            self._forget_missing()
            return sum(u.size for u in self._uploads.values() if u.client == client)

    def _forget_missing(self) -> None:
        for path in [p for p in self._uploads if not p.exists()]:
            del self._uploads[path]

    # -- in use -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def pin(self, *paths: str | Path | None) -> Iterator[None]:
        """Files a running query uses: never removed while the block runs."""
        resolved = [Path(p).resolve() for p in paths if p]
        with self._lock:
            for p in resolved:
                self._pins[p] = self._pins.get(p, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for p in resolved:
                    self._pins[p] -= 1
                    if not self._pins[p]:
                        del self._pins[p]

    def _removable(self, entry: _Entry, now: float) -> bool:
        return entry.path not in self._pins and now - entry.mtime >= self.grace

    def _remove(self, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove %s to free space: %s", path.name, exc)
            return False
        self._uploads.pop(path, None)
        parent = path.parent
        while parent not in self.roots and any(root in parent.parents for root in self.roots):
            try:
                parent.rmdir()  # Gradio keeps each file in a folder of its own; remove it once empty
            except OSError:
                break
            parent = parent.parent
        return True

    # -- making room ------------------------------------------------------------------------------------

    def enforce(self, needed: int = 0) -> int:
        """Remove the oldest removable files until everything plus `needed` bytes fits; returns bytes freed."""
        if self.total_bytes is None:
            return 0
        with self._lock:
            entries = self._entries()
            used = sum(e.size for e in entries) + self._reserved
            freed = 0
            now = self.clock()
            for entry in sorted(entries, key=lambda e: e.mtime):
                if used - freed + needed <= self.total_bytes:
                    break
                if self._removable(entry, now) and self._remove(entry.path):
                    freed += entry.size
            if freed:
                logger.info("disk budget: removed %s of the oldest files", format_bytes(freed))
            return freed

    def admit_upload(self, client: str, size: int) -> None:
        """Make room for an upload of `size` bytes from `client`, or raise `BudgetExceeded` saying why not.

        An admitted upload holds its room until `record_upload` or `release` is called.
        """
        with self._lock:
            if self.per_client_bytes is not None:
                if size > self.per_client_bytes:
                    raise BudgetExceeded(f"This upload is {format_bytes(size)}; this server keeps at most "
                                         f"{format_bytes(self.per_client_bytes)} of uploads per user.")
                self._forget_missing()
                own = sorted((u for u in self._uploads.values() if u.client == client), key=lambda u: u.at)
                kept = sum(u.size for u in own)
                for upload in own:  # this client's oldest uploads make room for their newest
                    if kept + size <= self.per_client_bytes:
                        break
                    if upload.path not in self._pins and self._remove(upload.path):
                        kept -= upload.size
                if kept + size > self.per_client_bytes:
                    raise BudgetExceeded(f"Your uploads in use here already take {format_bytes(kept)} of the "
                                         f"{format_bytes(self.per_client_bytes)} each user may keep; wait for "
                                         "your running queries to finish, then upload again.")
            if self.total_bytes is not None:
                if size > self.total_bytes:
                    raise BudgetExceeded(f"This upload is {format_bytes(size)}; this server keeps at most "
                                         f"{format_bytes(self.total_bytes)} in all.")
                self.enforce(needed=size)
                if self.usage() + self._reserved + size > self.total_bytes:
                    raise BudgetExceeded("This server has no room for more uploads right now; try again in a "
                                         "few minutes.", status=507)
            self._reserved += size

    def release(self, size: int) -> None:
        """Give back the room `admit_upload` held (the upload failed or was recorded)."""
        with self._lock:
            self._reserved = max(0, self._reserved - size)

    def record_upload(self, client: str, paths: Iterable[str | Path]) -> None:
        """The files an admitted upload stored: they count towards `client`'s limit from now on."""
        now = self.clock()
        with self._lock:
            for p in paths:
                path = Path(p).resolve()
                if not any(root in path.parents for root in self.roots):
                    continue
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                self._uploads[path] = _Upload(path, size, client, now)
