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
            TMPDIR=str(self.workdir / "tmp"),  # the session folders, so that tests can find them
            GRADIO_ANALYTICS_ENABLED="False",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, timeout: float = 240.0) -> AppServer:
        (self.workdir / "tmp").mkdir(exist_ok=True)
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


# The names `view_api()` gives /predict's inputs and outputs (README's gradio_client example uses them).
PREDICT_INPUTS = [("video", "Video", False), ("text", "Text query", True), ("image", "Example image (optional)", True)]
PREDICT_OUTPUTS = [
    "Predictions (JSON)",
    "Moments (each event once; choose a row to play it)",
    "Saliency curve: the whole video and a zoom on the playing moment",
    "Highlight and summary points",
    "Summary video",
    "Downloads: predictions (JSON), top moment (mp4), summary (mp4)",
    "Status: the query that ran, moments found, timings",
    "Saliency per clip",
]
LIMITS = ("--max-file-size", "1mb", "--client-budget", "2mb", "--trust-proxy")


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


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("app-inputs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = AppServer(tmp_path_factory.mktemp("app-server"), "--max-duration", str(MAX_DURATION), *LIMITS)
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def _contains(outer, inner, tolerance=0.0) -> bool:
    return outer[0] - tolerance <= inner[0] and inner[1] <= outer[1] + tolerance


@pytest.mark.slow
def test_image_query_finds_the_planted_moment(client, server, inputs):
    from gradio_client import handle_file

    outputs = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                             api_name="/predict")
    assert len(outputs) == len(PREDICT_OUTPUTS)
    result = as_dict(outputs[0])
    assert {"pred_relevant_windows", "pred_saliency_scores", "pred_highlight", "pred_summary"} <= set(result)
    start, end, _score = result["pred_relevant_windows"][0]
    assert iou((start, end), PLANTED) >= 0.8, result["pred_relevant_windows"][:3]
    assert result["duration"] == pytest.approx(30.0, abs=0.2)
    assert len(result["pred_saliency_scores"]) == 15  # 2 s clips
    assert PLANTED[0] <= result["pred_highlight"] <= PLANTED[1]
    assert result["mode"] == "zero-shot" and result["query_kind"] == "image"
    windows = result["pred_relevant_windows"]
    assert not any(_contains(a, b) for i, a in enumerate(windows) for j, b in enumerate(windows) if i != j)

    _json, table, plot, gallery, summary_video, downloads, status, _curve = outputs
    rows = table["data"] if isinstance(table, dict) else table
    assert rows and rows[0][1:3] == ["00:10", "00:20"]
    assert rows[0][4] == f"{windows[0][2]:.4f}"  # the score as the CLI prints it
    assert len(rows) == len(windows)
    assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    assert gallery and "Highlight" in (gallery[0].get("caption") or "")
    assert len(gallery) == 1 + len(result["summary_shown"])
    summary_path = summary_video.get("video") if isinstance(summary_video, dict) else summary_video
    assert Path(summary_path).suffix == ".mp4" and Path(summary_path).stat().st_size > 1000
    names = sorted(Path(d).suffix for d in downloads)
    assert names == [".json", ".mp4", ".mp4"]
    assert "indexed 15 clips" in status and "mode: zero-shot" in status and "Query (image)" in status

    # Same video again, now with text as well: the features come from the cache, the page says which query ran.
    again = client.predict(handle_file(str(inputs["video"])), "cyan", handle_file(str(inputs["cyan"])),
                           api_name="/predict")
    assert "cached features" in again[6] and "Query (text + image)" in again[6]
    assert as_dict(again[0])["query_kind"] == "text + image"


@pytest.mark.slow
def test_bad_input_is_one_clear_error_and_the_server_keeps_serving(client, server, inputs):
    from gradio_client import handle_file

    cases = [
        ((handle_file(str(inputs["broken"])), "", handle_file(str(inputs["cyan"]))), "could not be read"),
        ((None, "a cyan screen", None), "No video"),
        ((handle_file(str(inputs["video"])), "   ", None), "query is empty"),
        ((handle_file(str(inputs["long"])), "", handle_file(str(inputs["cyan"]))), f"limit here is {MAX_DURATION}"),
        ((handle_file(str(inputs["video"])), "", handle_file(str(inputs["broken"]))), "is not an image"),
        ((handle_file(str(inputs["video"])), "x" * 301, None), "has 301 characters; shorten it to at most 300"),
    ]
    for args, expected in cases:
        with pytest.raises(Exception) as caught:
            client.predict(*args, api_name="/predict")
        message = str(caught.value)
        assert expected in message, (expected, message)
        assert "Could not preprocess" not in message and str(server.workdir) not in message, message
        assert "/tmp/" not in message and "gradio-tmp" not in message, message  # no server paths
        assert server.alive(), server.log()

    outputs = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                             api_name="/predict")
    assert iou(as_dict(outputs[0])["pred_relevant_windows"][0][:2], PLANTED) >= 0.8


@pytest.mark.slow
def test_api_names_every_input_and_output(client):
    info = client.view_api(print_info=False, return_format="dict")
    named = info["named_endpoints"]
    assert list(named) == ["/predict"]  # UI events (player, picks, uploads) stay private
    params = [(p["parameter_name"], p["label"], p["parameter_has_default"]) for p in named["/predict"]["parameters"]]
    assert params == PREDICT_INPUTS
    returns = [r["label"] for r in named["/predict"]["returns"]]
    assert returns == PREDICT_OUTPUTS
    assert not any(label.startswith(("value_", "parameter_")) for label in returns)


@pytest.mark.slow
def test_queries_are_logged_bounded_and_escaped(client, server, inputs):
    from gradio_client import handle_file

    text = "cyan\x1b[31m\r\nFAKE LINE" + "y" * 250
    client.predict(handle_file(str(inputs["video"])), text, None, api_name="/predict")
    with pytest.raises(Exception, match="shorten it"):
        client.predict(handle_file(str(inputs["video"])), "z" * 100_000, None, api_name="/predict")
    log = server.log_path.read_text(errors="replace")
    line = next(ln for ln in log.splitlines() if "cyan\\x1b[31m\\r\\nFAKE LINE" in ln)
    assert len(line) < 400 and f"({len(text)} characters)" in line
    assert "\x1b" not in log and "FAKE LINE" not in log.replace("\\r\\nFAKE LINE", "")
    assert "z" * 200 not in log and max(len(ln) for ln in log.splitlines()) < 2000


@pytest.mark.slow
def test_uploads_over_the_size_or_the_budget_are_refused_with_a_message(server, tmp_path):
    import httpx

    big, chunks = tmp_path / "big.mp4", []
    big.write_bytes(np.random.default_rng(1).bytes(1_300_000))
    refused = upload(server.url, big)
    assert refused.status_code == 413
    assert refused.text == "This file is 1.3 MB; the largest upload here is 1.0 MB."

    for i in range(3):  # 0.9 MB each from one client whose limit is 2 MB: its oldest upload goes first
        chunk = tmp_path / f"chunk-{i}.mp4"
        chunk.write_bytes(np.random.default_rng(10 + i).bytes(900_000))
        answer = upload(server.url, chunk, client="10.0.0.7")
        assert answer.status_code == 200, answer.text
        chunks.append(answer.json()[0])
    other = tmp_path / "other.mp4"
    other.write_bytes(np.random.default_rng(99).bytes(900_000))
    others = upload(server.url, other, client="10.0.0.8").json()[0]  # another client is not affected
    assert not Path(chunks[0]).exists() and Path(chunks[1]).exists() and Path(chunks[2]).exists()
    assert Path(others).exists()
    assert httpx.get(server.url + f"gradio_api/file={chunks[0]}", timeout=10).status_code == 403
    assert httpx.get(server.url + f"gradio_api/file={chunks[2]}", timeout=10).status_code == 200


@pytest.mark.slow
def test_only_the_apps_own_files_are_served(client, server, inputs, tmp_path):
    import httpx
    from gradio_client import handle_file

    outputs = client.predict(handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])),
                             api_name="/predict")
    name = Path(outputs[2]).name  # the saliency PNG, as served from Gradio's cache of copies
    served = next((server.workdir / "gradio-tmp").rglob(name))
    assert httpx.get(server.url + f"gradio_api/file={served}", timeout=10).status_code == 200
    sessions = next((server.workdir / "tmp").glob("univtg-app-*"))  # the session folders themselves
    own = next(p for p in sessions.rglob("*.png"))
    link = served.parent / "link.png"
    link.symlink_to("/etc/passwd")
    cache = server.workdir / "features"
    feature = next(p for p in cache.rglob("*") if p.is_file())
    refused = [
        "gradio_api/file=/etc/passwd",
        f"gradio_api/file={own}",
        f"gradio_api/file={feature}",
        f"gradio_api/file={link}",
        f"gradio_api/file={served.parent}/../../../../etc/passwd",
        f"gradio_api/file={served.parent}/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "gradio_api/file=etc/passwd",
        "gradio_api/file=https://example.com/x.png",
        "gradio_api/file/etc/passwd",
        f"gradio_api/file/{served}",
        "gradio_api/proxy=http://127.0.0.1/",
    ]
    for path in refused:
        status, body = raw_get(server.port, "/" + path)
        assert status == 403 and "root:" not in body, (path, status, body[:200])


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
