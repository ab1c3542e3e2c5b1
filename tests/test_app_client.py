"""The app as a service: the shared test server (`conftest.app_server`) called with gradio_client and raw HTTP.

Random weights make text meaningless, but an image query still finds frames of the same colour, so a
red / cyan / purple video asked with a cyan image must answer with the cyan part.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_server import (
    MAX_DURATION,
    PLANTED,
    PREDICT_INPUTS,
    PREDICT_OUTPUTS,
    REPO,
    as_dict,
    free_port,
    iou,
    make_inputs,
    output_names,
    raw_get,
    upload,
)

from univtg_core import format_length

pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("app-inputs"))


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


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
    assert "15 clips, 30.0 s of video" in status and "mode: zero-shot" in status and "Query (image)" in status

    # Same video again, now with text as well: the features come from the cache, the page says which query ran.
    again = client.predict(handle_file(str(inputs["video"])), "cyan", handle_file(str(inputs["cyan"])),
                           api_name="/predict")
    assert "cached features" in again[6] and "Query (text + image)" in again[6]
    assert as_dict(again[0])["query_kind"] == "text + image"


@pytest.mark.slow
def test_the_api_takes_the_windows_to_search(client, inputs):
    """/predict's fourth input: zero-shot reads every clip by default (no windows in the answer); a number
    lays the 150 s windows and says how many were searched (here the 30 s video is one window)."""
    from gradio_client import handle_file

    video, cyan = handle_file(str(inputs["video"])), handle_file(str(inputs["cyan"]))
    default = as_dict(client.predict(video, "", cyan, api_name="/predict")[0])
    assert "window_search" not in default
    outputs = client.predict(video, "", cyan, "1", api_name="/predict")
    result = as_dict(outputs[0])
    assert result["window_search"] == {"searched": 1, "total": 1, "asked": "1", "rule": "K=1, as asked",
                                       "first_stage": "cosine"}
    assert iou(result["pred_relevant_windows"][0][:2], PLANTED) >= 0.8
    assert as_dict(client.predict(video, "", cyan, "all", api_name="/predict")[0]).get("window_search") is None


@pytest.mark.slow
def test_bad_input_is_one_clear_error_and_the_server_keeps_serving(client, server, inputs):
    from gradio_client import handle_file

    cases = [
        ((handle_file(str(inputs["broken"])), "", handle_file(str(inputs["cyan"]))), "could not be read"),
        ((None, "a cyan screen", None), "No video"),
        ((handle_file(str(inputs["video"])), "   ", None), "query is empty"),
        ((handle_file(str(inputs["long"])), "", handle_file(str(inputs["cyan"]))),
         f"limit here is {format_length(MAX_DURATION)}"),
        ((handle_file(str(inputs["video"])), "", handle_file(str(inputs["broken"]))), "is not an image"),
        ((handle_file(str(inputs["video"])), "x" * 301, None), "has 301 characters; shorten it to at most 300"),
        ((handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])), "many"),
         "Windows to search must be 'auto', 'all' or a whole number"),
        ((handle_file(str(inputs["video"])), "", handle_file(str(inputs["cyan"])), "0"), "got '0'"),
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
    assert output_names(info) == PREDICT_OUTPUTS


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
    sessions = next(server.workdir.glob("univtg-app-*"))  # the session folders themselves
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
