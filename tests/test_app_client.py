"""The app as a service: launch `main_gradio.py` with random CLIP weights and call it with gradio_client.

Random weights make text meaningless, but an image query still finds frames of the same colour, so a
red / cyan / purple video asked with a cyan image must answer with the cyan part.
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
import pytest

pytest.importorskip("gradio_client")

REPO = Path(__file__).resolve().parents[1]
RED, CYAN, PURPLE = (220, 30, 30), (0, 200, 220), (130, 40, 170)
PLANTED = (10.0, 20.0)  # the cyan part of the test video
MAX_DURATION = 60  # the server under test refuses longer videos


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_inputs(folder: Path) -> dict[str, Path]:
    """The test video (red 0-10 s, cyan 10-20 s, purple 20-30 s), a cyan image, a too-long and a broken file."""
    from PIL import Image

    from univtg_core.media import make_colour_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "video": folder / "red-cyan-purple.mp4",
        "cyan": folder / "cyan.png",
        "long": folder / "too-long.mp4",
        "broken": folder / "broken.mp4",
    }
    make_colour_video(paths["video"], [(RED, 10), (CYAN, 10), (PURPLE, 10)], fps=10, size=(160, 120))
    make_colour_video(paths["long"], [(RED, MAX_DURATION + 6)], fps=2, size=(64, 48))
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


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("app-inputs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = AppServer(tmp_path_factory.mktemp("app-server"), "--max-duration", str(MAX_DURATION))
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


@pytest.mark.slow
def test_image_query_finds_the_planted_moment(client, server, inputs):
    from gradio_client import handle_file

    outputs = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                             api_name="/predict")
    result = as_dict(outputs[0])
    assert {"pred_relevant_windows", "pred_saliency_scores", "pred_highlight", "pred_summary"} <= set(result)
    start, end, _score = result["pred_relevant_windows"][0]
    assert iou((start, end), PLANTED) >= 0.8, result["pred_relevant_windows"][:3]
    assert result["duration"] == pytest.approx(30.0, abs=0.2)
    assert len(result["pred_saliency_scores"]) == 15  # 2 s clips
    assert PLANTED[0] <= result["pred_highlight"] <= PLANTED[1]
    assert result["mode"] == "zero-shot"

    _json, table, plot, gallery, downloads, status, _curve = outputs
    rows = table["data"] if isinstance(table, dict) else table
    assert rows and rows[0][1:3] == ["00:10", "00:20"]
    assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    assert gallery and "Highlight" in (gallery[0].get("caption") or "")
    names = sorted(Path(d).suffix for d in downloads)
    assert names == [".json", ".mp4", ".mp4"]
    assert "Indexed" in status and "mode: zero-shot" in status

    # Same video again: the features come from the cache and the page says so.
    again = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                           api_name="/predict")
    assert "cached" in again[5]
    assert as_dict(again[0])["pred_relevant_windows"][0][:2] == [start, end]


@pytest.mark.slow
def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(client, server, inputs):
    from gradio_client import handle_file

    cases = [
        ((handle_file(str(inputs["broken"])), "", handle_file(str(inputs["cyan"]))), "could not be read"),
        ((None, "a cyan screen", None), "No video"),
        ((handle_file(str(inputs["video"])), "   ", None), "query is empty"),
        ((handle_file(str(inputs["long"])), "", handle_file(str(inputs["cyan"]))), f"limit here is {MAX_DURATION}"),
    ]
    for args, expected in cases:
        with pytest.raises(Exception) as caught:
            client.predict(*args, api_name="/predict")
        assert expected in str(caught.value), (expected, str(caught.value))
        assert server.alive(), server.log()

    outputs = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                             api_name="/predict")
    assert iou(as_dict(outputs[0])["pred_relevant_windows"][0][:2], PLANTED) >= 0.8


@pytest.mark.slow
def test_api_lists_predict_and_hides_ui_events(client):
    info = client.view_api(print_info=False, return_format="dict")
    named = info["named_endpoints"]
    assert "/predict" in named
    params = [p["parameter_name"] for p in named["/predict"]["parameters"]]
    assert params == ["video", "text", "image"]
    assert not any(name.startswith(("/_pick", "/_seek")) for name in named)


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_stops_start_up_with_one_line(tmp_path):
    bad = tmp_path / "not-a-checkpoint.ckpt"
    bad.write_bytes(b"definitely not a checkpoint")
    proc = subprocess.run(
        [sys.executable, "main_gradio.py", "--clip-weights", "random", "--resume", str(bad), "--port",
         str(free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("main_gradio.py: error:")]
    assert len(errors) == 1 and "not-a-checkpoint.ckpt" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
