"""The page in a real browser: upload a video, ask with text and an image, and see every result appear.

Uses Debian's chromium (or $UNIVTG_CHROMIUM) through playwright's `executable_path` (playwright's own
browser download is not used). The screenshot lands in pytest's tmp folder and is copied, for people and
CI artefacts, to $UNIVTG_TEST_ARTIFACTS (default: univtg-test-artifacts in the system's temp folder).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import artifact_dir, chromium_path
from test_app_client import PLANTED, AppServer, make_inputs

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser():
    chromium_exe = chromium_path()
    if not chromium_exe.exists():
        pytest.skip(f"{chromium_exe} is missing: install Debian's chromium (apt-get install chromium; .ci/run "
                    "does) or point $UNIVTG_CHROMIUM at a Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(chromium_exe),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = AppServer(tmp_path_factory.mktemp("browser-server"))
    try:
        yield app.start()
    finally:
        app.stop()


def test_upload_query_and_see_results(browser, server, tmp_path):
    inputs = make_inputs(tmp_path / "inputs")
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector("#player")
        assert "results are meaningless" in page.inner_text("#banner-random")
        assert "Zero-shot mode" in page.inner_text("#banner-mode")

        page.locator("#player input[type=file]").set_input_files(str(inputs["video"]))
        page.wait_for_selector("#player video", state="attached", timeout=60_000)
        page.locator("#query-image input[type=file]").set_input_files(str(inputs["cyan"]))
        page.wait_for_selector("#query-image img", timeout=30_000)
        query = page.locator("#query-text textarea")
        query.fill("the cyan part")
        query.press("Enter")  # Enter submits, as the button does

        rows = page.locator("#moments [role=row][data-index]")  # body rows of Gradio's virtual table
        rows.first.wait_for(timeout=180_000)
        page.wait_for_function("document.querySelectorAll('#points img').length > 0", timeout=60_000)
        page.wait_for_function(
            "(() => { const i = document.querySelector('#saliency img'); return i && i.naturalWidth > 0; })()",
            timeout=60_000,
        )

        assert rows.count() >= 1
        first = rows.first.inner_text()
        assert "00:10" in first and "00:20" in first, first  # the planted cyan moment is on top
        assert page.locator("#moments [role=gridcell] img").count() >= 1  # thumbnails inside the table
        plot_width = page.eval_on_selector("#saliency img", "img => img.naturalWidth")
        assert plot_width > 300
        thumbs = page.eval_on_selector_all("#points img", "imgs => imgs.filter(i => i.naturalWidth > 0).length")
        assert thumbs >= 2  # the highlight and at least one summary point
        assert "Highlight" in page.inner_text("#points")
        assert page.locator("#downloads a").count() >= 1 or ".json" in page.inner_text("#downloads")
        assert "query:" in page.inner_text("#status")  # how long indexing and the query took

        # Choosing the top row cues the player at the moment's start and plays it (time moves past the start).
        page.locator('#moments [data-testid="cell-0-1"]').click()
        page.wait_for_function(
            f"(() => {{ const v = document.querySelector('#player video');"
            f" return v && !v.paused && v.currentTime > {PLANTED[0] + 0.5}; }})()",
            timeout=20_000,
        )
        position = page.eval_on_selector("#player video", "v => v.currentTime")
        assert PLANTED[0] < position <= PLANTED[1] + 0.5

        page.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "app-browser.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        shutil.copy(shot, artifact_dir() / "app-browser.png")
    finally:
        page.close()
