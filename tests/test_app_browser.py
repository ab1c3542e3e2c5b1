"""The page in a real browser, at a phone's width (390 px) and a wide screen's (1400 px): upload a video with
nested candidate moments, ask with text and an image, and check that each event shows once, that every
choice (table row, gallery tile, dragged curve range, example) moves the player to the right second, that
one error is one message, and that the layout holds at both widths.

Uses Debian's chromium (or $UNIVTG_CHROMIUM) through playwright's `executable_path` (playwright's own
browser download is not used). Screenshots land in pytest's tmp folder and are copied, for people and CI
artefacts, to $UNIVTG_TEST_ARTIFACTS (default: univtg-test-artifacts in the system's temp folder).
"""

from __future__ import annotations

import re
import shutil

import pytest
from app_server import CYAN, PREDICT_OUTPUTS, make_inputs
from conftest import artifact_dir, chromium_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WIDE, PHONE = {"width": 1400, "height": 1000}, {"width": 390, "height": 900}
OUTER = (10.0, 24.0)  # the teal-cyan-teal event of the nested video; the cyan run 14-20 s lies inside it


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
def server(app_server):
    return app_server


def seconds(clock: str) -> float:
    """'00:10' or '1:00:05' -> seconds."""
    value = 0.0
    for part in clock.strip().split(":"):
        value = value * 60 + float(part)
    return value


def park_player(page, at: float = 0.0) -> None:
    """Pause the player somewhere else, so that the next check sees the seek a choice makes."""
    page.eval_on_selector("#player video", "(v, at) => { v.pause(); v.currentTime = at; }", at)
    page.wait_for_function("at => Math.abs(document.querySelector('#player video').currentTime - at) < 0.05",
                           arg=at, timeout=5_000)


def wait_player_at(page, second: float, tolerance: float = 0.6, timeout: float = 30_000) -> float:
    page.wait_for_function(
        "([t, tol]) => { const v = document.querySelector('#player video');"
        " return v && v.readyState >= 1 && Math.abs(v.currentTime - t) <= tol; }",
        arg=[second, tolerance], timeout=timeout,
    )
    return page.eval_on_selector("#player video", "v => v.currentTime")


def table_rows(page) -> list[list[str]]:
    rows = page.locator("#moments [role=row][data-index]")
    found = []
    for r in range(rows.count()):
        found.append([page.inner_text(f'#moments [data-testid="cell-{r}-{c}"]').strip() for c in range(6)])
    return found


def layout_problems(page, width: int) -> list[str]:
    """What breaks the layout at this width: words split across lines in the table, tiles under a label,
    remove buttons on read-only downloads, a page wider than the screen."""
    return page.evaluate(
        """(width) => {
          const problems = [];
          const lines = (el) => {
            const range = document.createRange(); range.selectNodeContents(el);
            return new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
          };
          document.querySelectorAll('#moments [role=columnheader] span.header').forEach(el => {
            if (lines(el) > 1) problems.push('header breaks: ' + el.textContent);
          });
          document.querySelectorAll('#moments [role=row][data-index]').forEach(row => {
            Array.from(row.querySelectorAll('[role=gridcell] span.text')).slice(0, 5).forEach(el => {
              if (el.textContent.trim() && lines(el) > 1) problems.push('cell breaks: ' + el.textContent);
            });
          });
          const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
          document.querySelectorAll('#downloads .label-clear-button').forEach(el => {
            if (visible(el)) problems.push('remove button on a download');
          });
          const label = document.querySelector('#points [data-testid=block-label]');
          const tile = document.querySelector('#points .thumbnail-item');
          if (label && tile && visible(label)) {
            const a = label.getBoundingClientRect(), b = tile.getBoundingClientRect();
            if (a.bottom > b.top && a.top < b.bottom && a.right > b.left && a.left < b.right)
              problems.push('the gallery label covers a tile');
          }
          if (document.documentElement.scrollWidth > width + 1) problems.push('page wider than the screen');
          return problems;
        }""",
        width,
    )


def shot(page, tmp_path, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    shutil.copy(path, artifact_dir() / name)


def drag_on_curve(page, start: float, end: float, first_time: float, last_time: float) -> None:
    """Drag a range on the interactive curve from `start` to `end` seconds (the line runs from the first clip
    centre to the last, so its drawn extent gives the time -> pixel mapping)."""
    line = page.locator("#curve .mark-line path").first
    line.wait_for(timeout=20_000)
    box = line.bounding_box()

    def x(t: float) -> float:
        return box["x"] + (t - first_time) / (last_time - first_time) * box["width"]

    y = box["y"] + box["height"] / 2
    page.mouse.move(x(start), y)
    page.mouse.down()
    page.mouse.move(x(end), y, steps=8)
    page.mouse.up()


def test_the_page_at_two_widths(browser, server, tmp_path):
    inputs = make_inputs(tmp_path / "inputs")
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(60_000)
    try:
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector("#upload")
        assert "results are meaningless" in page.inner_text("#banner-random")
        assert "Zero-shot mode" in page.inner_text("#banner-mode")

        # Upload the video whose cyan image query has nested candidates, ask with text and the image.
        page.locator("#upload input[type=file]").set_input_files(str(inputs["nested"]))
        page.wait_for_function("(() => { const v = document.querySelector('#player video');"
                               " return v && v.readyState >= 1; })()", timeout=60_000)
        page.locator("#query-image input[type=file]").set_input_files(str(inputs["cyan"]))
        page.wait_for_selector("#query-image img", timeout=30_000)
        query = page.locator("#query-text textarea")
        query.fill("the cyan part")
        query.press("Enter")  # Enter submits, as the button does
        page.locator("#moments [role=row][data-index]").first.wait_for(timeout=180_000)
        page.wait_for_function("document.querySelectorAll('#points img').length > 1", timeout=60_000)
        page.wait_for_function(
            "(() => { const i = document.querySelector('#saliency img'); return i && i.naturalWidth > 300; })()",
            timeout=60_000,
        )
        assert "Query (text + image)" in page.inner_text("#status")  # the query that ran, said in words

        # Each event once: the cyan run inside the teal-and-cyan event is folded under it, not a row.
        rows = table_rows(page)
        spans = [(seconds(r[1]), seconds(r[2])) for r in rows]
        assert spans[0] == OUTER, rows
        assert not any(a[0] <= b[0] and b[1] <= a[1] for i, a in enumerate(spans) for j, b in enumerate(spans)
                       if i != j), rows
        assert "also 00:14–00:20" in rows[0][5], rows  # ... and still named under it
        assert re.fullmatch(r"\d\.\d{4}", rows[0][4]) and rows[0][3] == "14.0 s"
        assert page.locator("#moments [role=gridcell] img").count() >= 1  # thumbnails inside the table

        # The answer cues the player at the top moment and highlights its row.
        wait_player_at(page, OUTER[0])
        assert 'data-index="0"' in page.eval_on_selector("#univtg-playing-row", "s => s.textContent")

        # A table row plays its moment from its start.
        park_player(page, 2.0)
        page.locator('#moments [data-testid="cell-0-2"]').click()
        wait_player_at(page, OUTER[0])
        page.wait_for_function(
            f"(() => {{ const v = document.querySelector('#player video');"
            f" return v && !v.paused && v.currentTime > {OUTER[0] + 0.3}; }})()", timeout=20_000)

        # A gallery tile (a summary point) plays the clip around it.
        tiles = page.locator("#points .thumbnail-item")
        caption = tiles.nth(1).inner_text()
        point = seconds(caption.split("·")[-1])
        park_player(page, 29.0)
        tiles.nth(1).click()
        wait_player_at(page, max(0.0, point - 1.0))

        # A range dragged on the interactive curve plays from its start.
        page.get_by_role("tab", name=re.compile("Interactive curve")).click()
        park_player(page, 0.0)
        drag_on_curve(page, 20.0, 26.0, first_time=1.0, last_time=29.0)
        wait_player_at(page, 20.0, tolerance=0.8)
        page.get_by_role("tab", name="Saliency curve").click()

        # The summary is watchable in the page, with how many points and how long.
        summary_label = page.inner_text("#summary-caption")
        assert re.search(r"\d+ summary points? · \d+\.\d s", summary_label), summary_label
        assert page.eval_on_selector("#summary-video video", "v => !!v.currentSrc")
        assert page.locator("#downloads a").count() >= 1 or ".json" in page.inner_text("#downloads")
        assert layout_problems(page, WIDE["width"]) == []
        shot(page, tmp_path, "app-1400.png")

        page.set_viewport_size(PHONE)
        page.wait_for_timeout(800)
        assert layout_problems(page, PHONE["width"]) == []
        shot(page, tmp_path, "app-390.png")
        page.set_viewport_size(WIDE)

        # What the user clears is cleared: without the image the next query is a text query.
        page.locator("#clear-query").click()
        page.wait_for_selector("#query-image img", state="detached", timeout=10_000)
        query.fill("the cyan part")
        query.press("Enter")
        page.wait_for_function("document.querySelector('#status').innerText.includes('Query (text)')",
                               timeout=120_000)

        # An example loads its video into the player at its top moment.
        page.locator("#examples button", has_text="Colour blocks (30 s) · cyan image").click()
        page.wait_for_function("(() => { const v = document.querySelector('#player video');"
                               " return v && v.currentSrc.includes('colour-blocks'); })()", timeout=120_000)
        page.wait_for_function("document.querySelector('#status').innerText.includes('Query (image)')",
                               timeout=120_000)
        top = seconds(table_rows(page)[0][1])
        assert top == 10.0
        wait_player_at(page, top)

        # A file browsers cannot play (HEVC in mkv) plays from a browser-playable copy.
        from univtg_core.media import make_colour_video

        hevc = make_colour_video(tmp_path / "phone.mkv", [(CYAN, 4)], fps=10, size=(64, 48), codec="libx265")
        page.locator('#upload button[aria-label="Clear"]').click()
        page.locator("#upload input[type=file]").set_input_files(str(hevc))
        page.wait_for_function("(() => { const v = document.querySelector('#player video');"
                               " return v && v.currentSrc.includes('playable-phone') && v.readyState >= 1; })()",
                               timeout=60_000)
        assert page.locator(".toast-body").count() == 0

        # One unreadable file, one message (not a second "Video not playable" from the player).
        page.locator('#upload button[aria-label="Clear"]').click()
        page.locator("#upload input[type=file]").set_input_files(str(inputs["broken"]))
        page.wait_for_function("document.querySelector('#status').innerText.trim() === ''", timeout=30_000)
        query.fill("anything")
        query.press("Enter")
        page.wait_for_selector(".toast-body", timeout=60_000)
        page.wait_for_timeout(1500)
        messages = page.locator(".toast-message-text").all_inner_texts()
        assert len(messages) == 1 and "could not be read as a video" in messages[0], messages
    finally:
        page.close()


def test_the_api_page_names_every_output(server):
    from gradio_client import Client

    info = Client(server.url, verbose=False).view_api(print_info=False, return_format="dict")
    assert [r["label"] for r in info["named_endpoints"]["/predict"]["returns"]] == PREDICT_OUTPUTS
