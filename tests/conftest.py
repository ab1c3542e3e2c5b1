"""Shared test helpers: where ../shared lives and how to skip clearly without it; where artefacts go."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"

torch.set_num_threads(2)


def shared_fixture(*parts: str) -> Path:
    """Path inside ../shared/fixtures, skipping the test with a reason when the folder is absent."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests need ../shared beside the checkout (CI provides it)")
    return path


def artifact_dir() -> Path:
    """Where tests leave files for people and CI to look at (screenshots): $UNIVTG_TEST_ARTIFACTS, else
    univtg-test-artifacts in the system's temp folder; never inside the checkout."""
    folder = Path(os.environ.get("UNIVTG_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "univtg-test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> Path:
    """The Chromium the browser tests drive: $UNIVTG_CHROMIUM, else Debian's /usr/bin/chromium."""
    return Path(os.environ.get("UNIVTG_CHROMIUM") or "/usr/bin/chromium")


@pytest.fixture(scope="session")
def univtg_reference() -> Path:
    """The official UniVTG fixture folder (checkpoint, inputs, outputs)."""
    return shared_fixture("univtg_reference")


@pytest.fixture(scope="session")
def univtg_model(univtg_reference):
    """The fixture checkpoint loaded once for the whole session (164 MB): tests must not change it."""
    from univtg_core import load_model

    return load_model(univtg_reference / "model_best.ckpt", device="cpu")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One running app for every app test module (tests/app_server.py says how it is started)."""
    pytest.importorskip("gradio_client")
    from app_server import SERVER_FLAGS, AppServer

    server = AppServer(tmp_path_factory.mktemp("app-server"), *SERVER_FLAGS)
    try:
        yield server.start()
    finally:
        server.stop()
