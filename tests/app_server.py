"""A server of the app for the tests: `main_gradio.py` with random CLIP weights as a subprocess on a free
loopback port (stopped by its PID), the inputs the tests send it, and raw HTTP helpers.

One server is shared by the app test modules (`conftest.app_server`, session-scoped): starting one costs
the model's load, tens of seconds on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RED, CYAN, PURPLE, TEAL = (220, 30, 30), (0, 200, 220), (130, 40, 170), (40, 150, 170)
PLANTED = (10.0, 20.0)  # the cyan part of the test video
# Teal around cyan: a cyan image query finds the cyan run and the wider teal-and-cyan event around it, two
# candidates NMS keeps (their IoU is low) although one lies inside the other.
NESTED_SEGMENTS = [(RED, 8), (TEAL, 6), (CYAN, 6), (TEAL, 6), (PURPLE, 4)]
MAX_DURATION = 300  # the shared server under test refuses longer videos


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_inputs(folder: Path) -> dict[str, Path]:
    """The test video (red 0-10 s, cyan 10-20 s, purple 20-30 s), one with nested candidates, a cyan image, a
    too-long and a broken file."""
    from PIL import Image

    from univtg_core.media import make_colour_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "video": folder / "red-cyan-purple.mp4",
        "cyan": folder / "cyan.png",
        "long": folder / "too-long.mp4",
        "broken": folder / "broken.mp4",
        "nested": folder / "teal-cyan-teal.mp4",
    }
    make_colour_video(paths["video"], [(RED, 10), (CYAN, 10), (PURPLE, 10)], fps=10, size=(160, 120))
    make_colour_video(paths["nested"], NESTED_SEGMENTS, fps=10, size=(160, 120))
    make_colour_video(paths["long"], [(RED, MAX_DURATION + 6)], fps=1, size=(64, 48))
    Image.fromarray(np.full((64, 64, 3), CYAN, dtype=np.uint8)).save(paths["cyan"])
    paths["broken"].write_bytes(np.random.default_rng(0).bytes(20_000))
    return paths


class AppServer:
    """`python main_gradio.py ...` as a subprocess on a free loopback port; stopped by its PID."""

    def __init__(self, workdir: Path, *extra: str):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = workdir / "server.log"
        self.args = [sys.executable, "main_gradio.py", "--clip-weights", "random", "--host", "127.0.0.1",
                     "--port", str(self.port), *extra]
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            UNIVTG_CACHE_DIR=str(self.workdir / "features"),  # a fresh feature cache: the first index is real
            GRADIO_EXAMPLES_CACHE=str(self.workdir / "examples-cache"),  # keep the checkout clean
            GRADIO_TEMP_DIR=str(self.workdir / "gradio-tmp"),
            TMPDIR=str(self.workdir),  # the session folders land here, where tests can find them
            GRADIO_ANALYTICS_ENABLED="False",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, timeout: float = 240.0) -> AppServer:
        self._log = open(self.log_path, "w")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env(), stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()


def iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def as_dict(value) -> dict:
    return json.loads(value) if isinstance(value, str) else value


# The names `view_api()` gives /predict's inputs (name, label, optional?) and outputs (as it prints them, from
# the output components' labels); README's gradio_client example unpacks the outputs by these names.
PREDICT_INPUTS = [("video", "Video", False), ("text", "Text query", True), ("image", "Example image (optional)", True),
                  ("coarse_top_k", "Windows to search", True)]
PREDICT_OUTPUTS = ["predictions", "moments", "saliency_curve", "highlight_and_summary_points", "summary_video",
                   "downloads", "status", "saliency_per_clip"]


def output_names(api_info: dict, endpoint: str = "/predict") -> list[str]:
    """An endpoint's outputs by the names `Client.view_api()` prints (its own rule, applied to the labels)."""
    from gradio_client.utils import sanitize_parameter_names

    return [sanitize_parameter_names(r["label"]) for r in api_info["named_endpoints"][endpoint]["returns"]]


# The shared server: short videos only, small uploads, a small per-client budget, clients told apart by the
# X-Forwarded-For the tests send.
SERVER_FLAGS = ("--max-duration", str(MAX_DURATION), "--max-file-size", "1mb", "--client-budget", "2mb",
                "--trust-proxy")


def raw_get(port: int, target: str) -> tuple[int, str]:
    """GET `target` exactly as written (no dot-segment clean-up, unlike httpx and browsers)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def upload(url: str, path: Path, client: str | None = None):
    """POST one file to Gradio's upload route as its page does; `client` fakes the proxy's X-Forwarded-For."""
    import httpx

    headers = {"X-Forwarded-For": client} if client else {}
    with open(path, "rb") as handle:
        return httpx.post(url + "gradio_api/upload", files=[("files", (path.name, handle))], headers=headers,
                          timeout=30)
