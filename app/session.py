"""Per-session output folders: every browser session writes into its own temporary folder, never a shared name.

One `SessionStore` per running app owns a root folder, by default under the system's temp directory. That
root is not served (the app launches with `allowed_paths=[]`): Gradio accepts the files our events return
from it because they lie under the temp directory, and copies each into its own cache, under an
unguessable hash, which is what the browser downloads. Each session gets a sub-folder, named by Gradio's
session hash when there is one, that is removed when the session ends (`gr.State`'s delete_callback,
`demo.unload`) or, as a backstop for sessions Gradio forgets without a callback, when it has not been
touched for `ttl` seconds.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class Session:
    """What one browser session keeps between events (held in `gr.State`, never in a module global)."""

    folder: Path
    created: float = field(default_factory=time.time)
    # Browser-playable copies this session made -> the uploads they stand for (features come from those).
    originals: dict[str, Path] = field(default_factory=dict)

    def new_path(self, stem: str, suffix: str) -> Path:
        """A fresh file name in this session's folder: readable stem plus a random part, never reused."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.touch()
        return self.folder / f"{_SAFE.sub('-', stem)[:48]}-{uuid.uuid4().hex[:10]}{suffix}"

    def write(self, stem: str, suffix: str, writer: Callable[[Path], object]) -> Path:
        """A new file written once and atomically: `writer` fills a hidden temporary name in the same folder,
        which is renamed into place only when complete. A name that was returned is never written again, so
        a file being served is never rewritten under a reader (or seen half-written)."""
        final = self.new_path(stem, suffix)
        partial = final.with_name(f".{final.stem}.partial{suffix}")  # same suffix: ffmpeg picks the format
        try:
            writer(partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return final

    def remember_original(self, copy: Path, original: str | Path) -> None:
        """`copy` (a browser-playable copy) stands for `original` in this session's later queries."""
        self.originals[Path(copy).name] = Path(original)

    def original_of(self, video: str | Path) -> str:
        """The upload a player copy stands for (matched by the copy's unique name), else `video` itself."""
        original = self.originals.get(Path(video).name)
        return str(original) if original is not None and original.is_file() else str(video)

    def touch(self) -> None:
        try:
            self.folder.touch(exist_ok=True)
        except OSError:
            pass

    def __deepcopy__(self, memo):
        # Gradio may deep-copy state values; a session is a handle to a folder, so copies share it.
        return self


class SessionStore:
    """Creates, sweeps and removes session folders under one root."""

    def __init__(self, root: str | Path | None = None, ttl: float = 6 * 3600):
        if root is None:
            root = tempfile.mkdtemp(prefix="univtg-app-")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = float(ttl)
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def open(self, session_hash: str | None = None) -> Session:
        """A session for this browser tab (by its hash) or a fresh anonymous one; sweeps stale folders."""
        self.sweep()
        name = _SAFE.sub("", session_hash or "")[:64] or uuid.uuid4().hex
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return Session(folder=folder)

    def close(self, session: Session | None) -> None:
        """Remove a session's folder (the state's delete_callback)."""
        if isinstance(session, Session):
            self._remove(session.folder)

    def close_hash(self, session_hash: str | None) -> None:
        """Remove the folder of the tab that was just closed (`demo.unload`)."""
        name = _SAFE.sub("", session_hash or "")[:64]
        if name:
            self._remove(self.root / name)

    def sweep(self, now: float | None = None, every: float = 300.0) -> int:
        """Remove folders untouched for `ttl` seconds; runs at most once per `every` seconds."""
        now = time.time() if now is None else now
        with self._lock:
            if every and now - self._last_sweep < every:
                return 0
            self._last_sweep = now
        removed = 0
        for child in self.root.iterdir():
            try:
                if child.is_dir() and now - child.stat().st_mtime > self.ttl:
                    self._remove(child)
                    removed += 1
            except OSError:
                continue
        return removed

    def _remove(self, folder: Path) -> None:
        folder = Path(folder).resolve()
        if folder.parent != self.root:  # never follow a name out of our root
            return
        shutil.rmtree(folder, ignore_errors=True)
        logger.debug("removed session folder %s", folder)

    def destroy(self) -> None:
        """Remove the whole root (server shutdown)."""
        shutil.rmtree(self.root, ignore_errors=True)
