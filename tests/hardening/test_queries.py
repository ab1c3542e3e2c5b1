"""Hostile query text through the Python API and the CLI: handled, and bounded and escaped in the logs.

Empty and whitespace-only text is one clear QueryError; 100,000 characters, emoji, right-to-left text,
control characters and a bidi override give a result that could be true. Every log record the core writes
on the way stays short and carries no raw control character (a log line is a terminal line, too).
"""

from __future__ import annotations

import logging
import math

import pytest

from univtg_core import QueryError, cli
from univtg_core.media import make_colour_video

from .conftest import TINY_MODEL
from .report import Row

LOG_LIMIT = 400  # characters one log record of the core may take, whatever the query
QUERIES = {
    "empty": "",
    "whitespace": " \t\n\u3000 ",
    "100k characters": ("a red wall " * 9091)[:100_000],
    "emoji": "👨\u200d👩\u200d👧 at the 🎂 party",
    "right-to-left": "כלב רץ על החוף",  # a dog runs on the beach
    "control characters": "red\x1b[2J\x07\r\nwall\x00",
    "bidi override": "the \u202egnp.exe\u202c wall",
}
REFUSED = {"empty", "whitespace"}


@pytest.fixture(scope="module")
def grounder(tiny_model, tmp_path_factory):
    from univtg_core import Grounder
    from univtg_core.encoders import load_clip_encoder

    encoder = load_clip_encoder(TINY_MODEL, weights="random", device="cpu", seed=0)
    return Grounder(encoder, clip_len=2.0, cache_dir=tmp_path_factory.mktemp("query-cache"), use_cache=True)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_colour_video(tmp_path_factory.mktemp("queries") / "colours.mp4",
                             [((255, 0, 0), 4), ((0, 255, 255), 4)], fps=10, size=(64, 48))


def _check_records(records: list[logging.LogRecord]) -> None:
    for record in records:
        message = record.getMessage()
        assert len(message) <= LOG_LIMIT, f"{record.name}: {len(message)} characters: {message[:120]!r}"
        assert not any(ord(ch) < 32 or ch in "\u202e\u202d" for ch in message), repr(message[:200])


@pytest.mark.parametrize("label", list(QUERIES))
def test_query_text_through_the_python_api(label, grounder, video, caplog, report, request):
    text = QUERIES[label]
    row = report.add(Row("queries", "Python API", label, f"text query: {label} ({len(text)} characters)",
                         "one QueryError" if label in REFUSED else "a result, logs bounded and escaped",
                         nodeid=request.node.nodeid))
    index = grounder.index(video)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="univtg_core"):
        if label in REFUSED:
            with pytest.raises(QueryError) as info:
                grounder.query(index, text=text)
            row.outcome = f"refused: {info.value}"
            assert "\n" not in str(info.value) and len(str(info.value)) < 300
        else:
            pred = grounder.query(index, text=text)
            row.outcome = (f"{len(pred.moments)} moments, highlight {pred.highlight:.1f} s; longest log record "
                           f"{max((len(r.getMessage()) for r in caplog.records), default=0)} characters")
            assert pred.moments and all(0 <= m.start < m.end <= index.duration for m in pred.moments)
            assert 0 <= pred.highlight < index.duration and all(math.isfinite(s) for s in pred.saliency)
            assert pred.query == text.strip()  # the result names the query that ran
    _check_records(caplog.records)


def test_query_text_through_the_cli(grounder, video, tmp_path, capsys, report, request):
    row = report.add(Row("queries", "CLI", "all texts", "`predict` with the 7 texts above as --query",
                         "exit 2 naming the empty query; then one run: escaped lines, stderr bounded",
                         nodeid=request.node.nodeid))
    base = ["predict", str(video), "--clip-model", TINY_MODEL, "--clip-weights", "random", "--cache-dir",
            str(tmp_path / "cache")]
    assert cli.main([*base, "--query", QUERIES["whitespace"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "empty" in err, err
    queries = [q for label, q in QUERIES.items() if label not in REFUSED]
    assert cli.main([*base, *(a for q in queries for a in ("--query", q))]) == 0
    out, err = capsys.readouterr()
    row.outcome = f"exit 2 then 0; stdout {len(out)} characters, stderr {len(err)}"
    assert not any(ord(ch) < 32 and ch != "\n" for ch in out + err) and "\u202e" not in out + err
    assert all(len(line) <= LOG_LIMIT for line in err.splitlines()), err[:300]
    assert out.count("Query: ") == len(queries)
