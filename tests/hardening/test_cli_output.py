"""What the CLI writes (issue 9 item 11): inputs refused before any model loads, clean progress, escaped text.

In-process runs of ``univtg_core.cli.main`` with the suite's tiny random CLIP; the corpus tests run the same
command in the sandbox on every broken file.
"""

from __future__ import annotations

import io
import sys
import warnings
import zipfile

import pytest

from univtg_core import cli
from univtg_core.media import make_colour_video

from .conftest import TINY_MODEL


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the CLI gets as far as loading CLIP or a checkpoint."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(cli, "_grounder", refuse)


@pytest.fixture(scope="module")
def clip_video(tmp_path_factory):
    return make_colour_video(tmp_path_factory.mktemp("cli-output") / "colours.mp4",
                             [((255, 0, 0), 4), ((0, 255, 255), 4)], fps=10, size=(64, 48))


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_printable_escapes_control_characters_and_bidi_overrides():
    assert cli.printable("a\nb\tc\x1b[31m") == "a\\nb\\tc\\x1b[31m"
    assert cli.printable("file\u202egnp.mp4") == "file\\u202egnp.mp4"
    kept = "emoji 👨\u200d👩\u200d👧 and שלום and 日本語"  # joiners and right-to-left text are not controls
    assert cli.printable(kept) == kept


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "missing.mp4", "not found"),
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: (tmp / "notes.mp4").write_text("not a video") and tmp / "notes.mp4", "cannot open"),
])
def test_predict_checks_the_video_before_loading_any_model(tmp_path, capsys, no_model, make, words):
    path = make(tmp_path)
    rc = cli.main(["predict", str(path), "--query", "a dog", "--clip-weights", "random"])
    out, err = capsys.readouterr()
    assert rc == 2 and len(_errors(err)) == 1 and words in err, err
    assert err.strip() == _errors(err)[0]


def test_a_video_shorter_than_a_clip_is_refused_before_loading_any_model(tmp_path, capsys, no_model):
    short = make_colour_video(tmp_path / "short.mp4", [((255, 0, 0), 1.2)], fps=10, size=(64, 48))
    rc = cli.main(["predict", str(short), "--query", "a dog", "--clip-weights", "random"])
    err = capsys.readouterr().err
    assert rc == 2 and len(_errors(err)) == 1 and "shorter than one clip" in err, err


def test_index_checks_the_video_before_loading_any_model(tmp_path, capsys, no_model):
    rc = cli.main(["index", str(tmp_path / "missing.mp4"), "--clip-weights", "random"])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_a_still_image_is_refused_with_the_image_query_offered(tmp_path, capsys, no_model):
    from .corpus import WRITERS

    WRITERS["image-renamed"](tmp_path)
    rc = cli.main(["predict", str(tmp_path / "still-image.mp4"), "--query", "a dog", "--clip-weights", "random"])
    err = capsys.readouterr().err
    assert rc == 2 and len(_errors(err)) == 1 and "--query-image" in err, err


def test_a_torchscript_archive_as_resume_is_refused_before_torch_load(tmp_path, capsys, clip_video, no_model):
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as zf:  # the layout torch.jit.save writes
        zf.writestr("model/code/__torch__.py", "class Model(Module):\n  pass\n")
        zf.writestr("model/constants.pkl", b"\x80\x02).")
        zf.writestr("model/data.pkl", b"\x80\x02}.")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        rc = cli.main(["predict", str(clip_video), "--query", "a dog", "--clip-weights", "random", "--resume",
                       str(archive)])
    err = capsys.readouterr().err
    assert rc == 2 and "TorchScript archive, not a checkpoint" in err and "jit" not in err, err
    assert not [str(w.message) for w in seen]


def test_bar_draws_once_and_not_for_the_cache(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    cached = cli._Bar("video.mp4", enabled=True)
    cached(15, 15)  # the cache's only call
    cached.close()
    assert stream.getvalue() == ""
    bar = cli._Bar("video.mp4", enabled=True)
    for done in (0, 0, 5, 10, 15):
        bar(done, 15)
    bar.close()
    assert stream.getvalue().count(" 0%") == 1, stream.getvalue()
    drawn = stream.getvalue()
    off = cli._Bar("video.mp4", enabled=False)
    off(0, 15)
    off(15, 15)
    off.close()
    assert stream.getvalue() == drawn


def test_predict_prints_escaped_text_and_no_bar_off_a_terminal(tmp_path, capsys, tiny_model, clip_video):
    argv = ["predict", str(clip_video), "--query", "red\x1b[2J\nwall", "--clip-model", TINY_MODEL,
            "--clip-weights", "random", "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "red\\x1b[2J\\nwall" in out and "\x1b" not in out
    assert "clip/s" not in err and "%|" not in err, err  # stderr is not a terminal here
    assert cli.main([*argv, "--no-cache", "--progress"]) == 0
    assert "clip/s" in capsys.readouterr().err  # asked for
    assert cli.main([*argv, "--progress"]) == 0  # served from the cache: nothing to show
    assert "clip/s" not in capsys.readouterr().err
