"""Every file of the broken-media corpus through the Python API and the CLI: a correct result or one clear line.

Each file runs in the sandbox's child process with a timeout, so a hang or a crash is reported as such. The
Python API indexes the file and asks for cyan with an example image (a random CLIP still tells cyan from red);
the CLI runs ``predict`` with the same image. After every file nothing may be left in the temporary folder or
as a partial cache entry.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from .checks import CLIP_LEN, CYAN_RGB, check_consistent, check_one_line
from .conftest import TINY_MODEL, case_params
from .corpus import CASES, SIZE, MediaCase
from .report import Row
from .sandbox import REPO

# Lines a CLI run may print on stderr besides its one error line: our own log records.
OWN_LOG_PREFIXES = ("WARNING univtg_core", "INFO univtg_core")


def _media_file(corpus, case: MediaCase):
    folder, skipped = corpus
    if skipped.get(case.name):
        pytest.skip(skipped[case.name])
    return case.path(folder)


def _outcome(answer: dict) -> str:
    if answer["status"] == "result":
        top = answer["moments"][0][:2] if answer["moments"] else None
        return f"result: {answer['duration']:.2f} s, {answer['n_clips']} clips, top moment {top}"
    if answer["status"] == "refused":
        return f"refused ({answer['type']}): {answer['message'][:160]}"
    return f"{answer['status'].upper()}: {answer.get('type', '')} {answer.get('message', '')[:160]}"


_EXPECTED = {"ok": "correct result", "refuse": "one clear refusal", "either": "refusal or a consistent result"}


@pytest.mark.parametrize("case", case_params())
def test_python_api(case, corpus, sandbox, report, request):
    row = report.add(Row("media: Python API", case.group, case.name, case.description, _EXPECTED[case.expect],
                         nodeid=request.node.nodeid))
    path = _media_file(corpus, case)
    before = sandbox.leftovers()
    answer = sandbox.request("ground", path=str(path), image=CYAN_RGB, timeout=case.timeout)
    row.outcome = _outcome(answer)
    assert answer["status"] in ("result", "refused"), f"{answer['status']}: {answer.get('traceback') or answer}"
    assert sandbox.leftovers() == before, "temporary files left behind"
    if case.expect == "refuse" or (case.expect == "either" and answer["status"] == "refused"):
        assert answer["status"] == "refused", f"accepted: {row.outcome}"
        check_one_line(answer["message"])
        return
    assert answer["status"] == "result", f"refused a readable file: {answer['message']}"
    check_consistent(answer)
    if case.expect == "ok":
        expected = case.answer
        assert abs(answer["duration"] - expected.duration) <= expected.tolerance, answer["duration"]
        assert answer["n_clips"] == expected.n_clips
        substituted = [w for w in answer["warnings"] if "could not be decoded" in w or "undecodable" in w]
        assert not substituted, f"frames were not read: {substituted[:2]}"
        if expected.cyan is not None:
            start, end = expected.cyan
            saliency = np.asarray(answer["saliency"])
            centres = (np.arange(len(saliency)) + 0.5) * CLIP_LEN
            inside = (centres > start) & (centres < end)
            assert saliency[inside].min() > saliency[~inside].max(), saliency
            top_start, top_end = answer["moments"][0][:2]
            assert start - 1e-6 <= top_start and top_end <= end + 1e-6, answer["moments"][0]


# The CLI on every file that must be refused, and on one that must work.
CLI_CASES = [c for c in CASES if c.expect != "ok"] + [next(c for c in CASES if c.name == "h264-mp4")]
def _cli(sandbox, path, image, tmp_path) -> dict:
    (tmp_path / "cache").mkdir(exist_ok=True)
    argv = ["predict", str(path), "--query-image", str(image), "--clip-model", TINY_MODEL, "--clip-weights",
            "random", "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "out.jsonl")]
    answer = sandbox.request("cli", argv=argv)
    assert answer["status"] == "result", answer
    return answer


@pytest.fixture(scope="module")
def cyan_png(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("query") / "cyan.png"
    Image.new("RGB", (64, 64), tuple(CYAN_RGB)).save(path)
    return path


@pytest.mark.parametrize("case", case_params(CLI_CASES))
def test_cli_gives_one_error_line_and_exit_2(case, corpus, sandbox, report, request, cyan_png, tmp_path):
    row = report.add(Row("media: CLI", case.group, case.name, case.description,
                         "exit 0 with moments" if case.expect == "ok" else "exit 2, one `error:` line",
                         nodeid=request.node.nodeid))
    path = _media_file(corpus, case)
    before = sandbox.leftovers(tmp_path / "cache")
    answer = _cli(sandbox, path, cyan_png, tmp_path)
    errors = [line for line in answer["stderr"].splitlines() if line.startswith("error:")]
    row.outcome = f"exit {answer['rc']}; " + (errors[0][:160] if errors else "no error line")
    assert "Traceback" not in answer["stderr"]
    assert sandbox.leftovers(tmp_path / "cache") == before, "temporary files left behind"
    if case.expect == "ok" or (case.expect == "either" and answer["rc"] == 0):
        assert answer["rc"] == 0 and not errors and "top highlight" in answer["stdout"], answer
        return
    assert answer["rc"] == 2 and len(errors) == 1, answer["stderr"]
    check_one_line(errors[0])


@pytest.mark.parametrize("case", case_params(CLI_CASES))
def test_cli_stderr_holds_only_the_error_line(case, corpus, sandbox, cyan_png, tmp_path, report, request):
    row = report.add(Row("media: CLI stderr", case.group, case.name, case.description,
                         "stderr: the error line (or nothing) and our own log lines", nodeid=request.node.nodeid))
    path = _media_file(corpus, case)
    answer = _cli(sandbox, path, cyan_png, tmp_path)
    foreign = [line.strip() for line in answer["stderr"].splitlines()
               if line.strip() and not line.startswith(("error:", *OWN_LOG_PREFIXES))]
    row.outcome = f"{len(foreign)} other lines" + (f", e.g. {foreign[0][:100]!r}" if foreign else "")
    assert not foreign, foreign


@pytest.mark.slow
def test_cli_process_refuses_random_bytes_in_one_line(corpus, report, request, tmp_path):
    """The real command in a fresh process (random ViT-B-32): exit 2, one error line, no traceback."""
    case = next(c for c in CASES if c.name == "random-bytes")
    path = _media_file(corpus, case)
    row = report.add(Row("media: CLI", "process", "random-bytes (python -m univtg_core)",
                         "`python -m univtg_core predict` on 64 KiB of random bytes, in a fresh process with "
                         "random ViT-B-32", "exit 2, one `error:` line", nodeid=request.node.nodeid))
    proc = subprocess.run([sys.executable, "-m", "univtg_core", "predict", str(path), "--query", "a dog",
                           "--clip-weights", "random", "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TMPDIR": str(tmp_path)})
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    row.outcome = f"exit {proc.returncode}; {errors[0][:160] if errors else 'no error line'}"
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("torchinductor")]


ROTATED = [c for c in CASES if c.rotation is not None]


def _upright_reference(path, rotation: int) -> np.ndarray:
    """The first frame as a player shows it: ffmpeg's own decode, which applies the display rotation."""
    from univtg_core.media import ffmpeg_exe

    decoded = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                              "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                             capture_output=True, check=True, timeout=60).stdout
    w, h = SIZE if rotation % 180 == 0 else SIZE[::-1]
    return np.frombuffer(decoded, np.uint8).reshape(h, w, 3)


def _pattern(summary: dict) -> list[bool]:
    """Which quadrants are cyan (green channel high): top-left, top-right, bottom-left, bottom-right."""
    return [q[1] > 128 for q in summary["quadrants"]]


@pytest.mark.parametrize("case", case_params(ROTATED))
def test_rotated_video_is_read_upright(case, corpus, sandbox, report, request):
    from .worker import _summary

    row = report.add(Row("media: Python API", "rotation", case.name, case.description,
                         "frames as the player shows them", nodeid=request.node.nodeid))
    path = _media_file(corpus, case)
    reference = _summary(_upright_reference(path, case.rotation))
    answer = sandbox.request("frames", path=str(path), seconds=[1.0])
    assert answer["status"] == "result", answer
    thumb, clip = answer["thumbnails"][0], answer["clip_frames"][0]
    row.outcome = f"thumbnail {thumb['shape'][1]}x{thumb['shape'][0]}, player {reference['shape'][1]}x" \
                  f"{reference['shape'][0]}"
    assert thumb["shape"] == reference["shape"]
    assert _pattern(thumb) == _pattern(reference)
    assert _pattern(clip) == _pattern(reference)
