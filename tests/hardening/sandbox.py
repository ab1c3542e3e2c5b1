"""Run inputs in a child process (``worker.py``) with a per-request timeout: a hang or a crash is a finding.

The child is restarted after a timeout or a crash, so the next case starts clean. Its temporary folder
(``TMPDIR``) and the feature cache are folders the tests own, so "no temporary file left behind" can be
checked after every request.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")


class Sandbox:
    """One worker process at a time; ``request`` returns its answer, or ``{"status": "hang"|"crash"}``."""

    def __init__(self, folder: Path, model_config: Path, model_name: str, clip_len: float = 2.0,
                 timeout: float = 30.0):
        self.folder = folder
        self.tmpdir = folder / "tmp"
        self.cache_dir = folder / "cache"
        for d in (self.tmpdir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.config = folder / "worker.json"
        self.config.write_text(json.dumps({"model_config": str(model_config), "model_name": model_name,
                                           "clip_len": clip_len, "cache_dir": str(self.cache_dir)}))
        self.timeout = timeout
        self.stderr_path = folder / "worker-stderr.log"
        self.proc: subprocess.Popen | None = None
        self._ready = False
        self.restarts = 0
        self._buffer = b""
        self._next_id = 0

    # -- process ----------------------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the worker without waiting for it: its imports (torch, open_clip) overlap the caller's work."""
        if self.proc is not None:
            return
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONPATH": str(REPO), "UNIVTG_CACHE_DIR":
               str(self.cache_dir), "OMP_NUM_THREADS": "1"}
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), str(self.config)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=str(self.folder),
                                     start_new_session=True)
        self._buffer = b""
        self._ready = False

    def _start(self) -> None:
        self.spawn()
        if self._ready:
            return
        ready = self._read_line(max(self.timeout, 120.0))
        if ready is None or not json.loads(ready).get("ready"):
            self.close()
            raise RuntimeError(f"the hardening worker did not start; see {self.stderr_path}")
        self._ready = True

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the worker and nothing else
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=30)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe:
                    pipe.close()
            self._stderr.close()
            self.proc = None
            self._ready = False

    def _read_line(self, timeout: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None  # the worker died
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    # -- requests ---------------------------------------------------------------------------------------
    def request(self, op: str, timeout: float | None = None, **fields) -> dict:
        if self.proc is not None and self.proc.poll() is not None:
            self.close()
            self.restarts += 1
        self._start()
        self._next_id += 1
        message = {"id": self._next_id, "op": op, **fields}
        assert self.proc is not None and self.proc.stdin is not None
        started = time.monotonic()
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(timeout or self.timeout)
        if line is None:
            alive = self.proc.poll() is None
            code = self.proc.returncode
            self.close()
            self.restarts += 1
            if alive:
                return {"status": "hang", "seconds": time.monotonic() - started,
                        "message": f"no answer within {timeout or self.timeout:.0f} s"}
            return {"status": "crash", "message": f"the worker died (exit status {code})"}
        return json.loads(line)

    def leftovers(self, *cache_dirs: Path) -> list[str]:
        """Files in the worker's TMPDIR and partial writes in the caches: what a request must not leave behind."""
        found = [str(p.relative_to(self.tmpdir)) for p in self.tmpdir.rglob("*")]
        for cache in (self.cache_dir, *cache_dirs):
            found += [str(p) for p in cache.rglob("*") if ".tmp" in p.name]
        return sorted(found)
