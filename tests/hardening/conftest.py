"""Fixtures of the hardening suite: a tiny random CLIP, the broken-media corpus, the sandbox, the summary.

The corpus is written once per session under pytest's temporary base; the summary goes to
``$UNIVTG_HARDENING_REPORT`` (a folder) or ``<pytest base temp>/hardening-report``, never into the checkout.
The per-request timeout of the sandbox is ``$UNIVTG_HARDENING_TIMEOUT`` seconds (default 30).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .corpus import CASES, build_corpus
from .elsewhere import rows_from_reports
from .report import Report
from .sandbox import Sandbox

TINY_MODEL = "univtg-hardening-tiny"
# A CLIP small enough that encoding costs nothing next to decoding: the code paths are those of ViT-B-32.
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
_REPORT_KEY = pytest.StashKey[Report]()


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """The tiny CLIP's open_clip config file (written only: the worker registers it itself)."""
    path = tmp_path_factory.getbasetemp() / "hardening-model" / f"{TINY_MODEL}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_CONFIG))
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> Iterator[tuple[str, Path]]:
    """(name, config path) of the tiny CLIP, registered with open_clip in this process too while the session
    runs (and removed from open_clip's global table after it)."""
    import open_clip

    open_clip.add_model_config(tiny_config)
    yield TINY_MODEL, tiny_config
    open_clip.factory._MODEL_CONFIGS.pop(TINY_MODEL, None)


@pytest.fixture(scope="session")
def corpus(_corpus_build) -> tuple[Path, dict[str, str | None]]:
    """(folder, case name -> skip reason) of the broken-media corpus, written once per session."""
    folder, future = _corpus_build
    return folder, future.result()


@pytest.fixture(scope="session")
def _corpus_build(tmp_path_factory):
    """The corpus written in a background thread (its ffmpeg runs overlap the tests that come first)."""
    folder = tmp_path_factory.getbasetemp() / "broken-media"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hardening-corpus") as pool:
        yield folder, pool.submit(build_corpus, folder)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, tiny_config):
    box = Sandbox(tmp_path_factory.mktemp("sandbox"), tiny_config, TINY_MODEL,
                  timeout=float(os.environ.get("UNIVTG_HARDENING_TIMEOUT", "30")))
    yield box
    box.close()


@pytest.fixture(scope="session", autouse=True)
def _warm_start(request):
    """Start the slow shared setup at once, in parallel, for the tests collected: the worker process (its
    imports take seconds) and the corpus (a minute of ffmpeg on one core, a fraction on several)."""
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    if "report" in needed:
        request.getfixturevalue("report")  # its clock starts with the session
    if "sandbox" in needed:
        request.getfixturevalue("sandbox").spawn()
    if "corpus" in needed:
        request.getfixturevalue("_corpus_build")


@pytest.fixture(scope="session")
def report(request, tmp_path_factory) -> Report:
    folder = os.environ.get("UNIVTG_HARDENING_REPORT")
    base = tmp_path_factory.getbasetemp()
    rep = Report(Path(folder) if folder else base / "hardening-report", scrub=base)
    request.config.stash[_REPORT_KEY] = rep
    return rep


def case_params(cases=CASES, *, xfail=True):
    """pytest params of corpus cases, with the strict xfail of each case whose fix is pending."""
    params = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if xfail and case.xfail else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    report = item.config.stash.get(_REPORT_KEY, None)
    if report is None:
        return
    if rep.when == "call":
        report.durations[item.nodeid] = rep.duration
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        if hasattr(rep, "wasxfail"):
            verdict = ("known bug", rep.wasxfail) if rep.outcome == "skipped" else ("FIXED, remove the xfail", "")
        elif rep.outcome == "passed":
            verdict = ("held", "")
        elif rep.outcome == "skipped":
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            verdict = ("skipped", reason.removeprefix("Skipped: "))
        else:
            verdict = ("FAILED", "")
        report.outcomes[item.nodeid] = verdict


def pytest_sessionfinish(session):
    report = session.config.stash.get(_REPORT_KEY, None)
    if report is None or not report.rows:
        return
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    seen = [r for reports in (terminal.stats.values() if terminal else ()) for r in reports
            if isinstance(r, pytest.TestReport)]
    for row, seconds in rows_from_reports(seen):  # checks that live with their code, run in this session
        report.add(row)
        report.outcomes[row.nodeid] = (row.verdict, "")
        report.durations[row.nodeid] = seconds
    report.write()


def pytest_terminal_summary(terminalreporter, config):
    report = config.stash.get(_REPORT_KEY, None)
    if report is not None and report.rows:
        terminalreporter.write_line(f"hardening summary: {report.folder / 'hardening-summary.json'} "
                                    f"(render: python -m scripts.hardening_table)")
