"""The disk budget and the request guard in front of Gradio, without a server: files on a tmp folder, a toy
ASGI app behind `ServerGuard`, a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from app.serving import ServerGuard, file_request_allowed
from app.storage import BudgetExceeded, DiskBudget, format_bytes, parse_size


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(folder: Path, name: str, size: int, age: float, clock: Clock) -> Path:
    """A file of `size` bytes written `age` seconds before the clock's now (in a folder of its own, as Gradio
    keeps its files)."""
    path = folder / name.replace(".", "-") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (clock.now - age, clock.now - age))
    return path


def test_parse_size_and_format_bytes():
    assert parse_size("200mb") == 200_000_000 and parse_size("1.5GB") == 1_500_000_000
    assert parse_size("512MiB") == 512 * 1024**2 and parse_size("10000") == 10_000
    assert parse_size("0") is None and parse_size("") is None and parse_size(None) is None
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert format_bytes(1_300_000) == "1.3 MB" and format_bytes(2_000_000_000) == "2.0 GB"
    assert format_bytes(512) == "512 bytes"


def test_the_total_budget_removes_the_oldest_files_first(tmp_path):
    clock = Clock()
    budget = DiskBudget([tmp_path], total_bytes=1000, per_client_bytes=None, grace=60, clock=clock)
    oldest = put(tmp_path, "a.mp4", 400, age=3000, clock=clock)
    middle = put(tmp_path, "b.png", 300, age=2000, clock=clock)
    newest = put(tmp_path, "c.jpg", 200, age=1000, clock=clock)
    budget.admit_upload("x", 300)  # 900 + 300 > 1000: the oldest file makes room
    assert not oldest.exists() and not oldest.parent.exists()  # its folder went with it
    assert middle.exists() and newest.exists()
    budget.release(300)
    assert budget.usage() == 500


def test_pinned_and_fresh_files_stay_and_what_cannot_fit_is_refused(tmp_path):
    clock = Clock()
    budget = DiskBudget([tmp_path], total_bytes=1000, per_client_bytes=None, grace=60, clock=clock)
    in_use = put(tmp_path, "query.mp4", 500, age=3000, clock=clock)
    fresh = put(tmp_path, "fresh.mp4", 400, age=5, clock=clock)
    with budget.pin(in_use):
        with pytest.raises(BudgetExceeded, match="no room for more uploads right now") as refused:
            budget.admit_upload("x", 300)
        assert refused.value.status == 507
    assert in_use.exists() and fresh.exists()
    budget.admit_upload("x", 300)  # not pinned any more: it is the oldest, it goes
    assert not in_use.exists() and fresh.exists()
    with pytest.raises(BudgetExceeded, match="at most 1.0 kB in all"):
        budget.admit_upload("x", 5000)


def test_admitted_uploads_hold_their_room_until_released(tmp_path):
    budget = DiskBudget([tmp_path], total_bytes=1000, per_client_bytes=None, grace=0, clock=Clock())
    budget.admit_upload("a", 600)
    with pytest.raises(BudgetExceeded):
        budget.admit_upload("b", 600)  # the first is still arriving
    budget.release(600)
    budget.admit_upload("b", 600)


def test_one_client_keeps_at_most_its_limit_its_oldest_uploads_going_first(tmp_path):
    clock = Clock()
    budget = DiskBudget([tmp_path], total_bytes=None, per_client_bytes=1000, grace=600, clock=clock)
    uploads = []
    for i in range(3):
        budget.admit_upload("filler", 450)
        clock.now += 1
        uploads.append(put(tmp_path, f"up-{i}.mp4", 450, age=0, clock=clock))
        budget.record_upload("filler", [uploads[-1]])
        budget.release(450)
    assert not uploads[0].exists() and uploads[1].exists() and uploads[2].exists()  # fresh, but its own
    other = put(tmp_path, "other.mp4", 450, age=0, clock=clock)
    budget.record_upload("someone-else", [other])
    budget.admit_upload("filler", 450)
    assert other.exists() and not uploads[1].exists()
    assert budget.client_usage("filler") == 450 and budget.client_usage("someone-else") == 450
    with pytest.raises(BudgetExceeded, match="at most 1.0 kB of uploads per user"):
        budget.admit_upload("filler", 1500)
    with budget.pin(uploads[2]):
        budget.admit_upload("filler", 450)  # room for two: nothing to remove
        with pytest.raises(BudgetExceeded, match="already take"):
            budget.admit_upload("filler", 900)


@pytest.mark.parametrize(
    ("requested", "allowed"),
    [
        ("{root}/abc/file.png", True),
        ("{root}/abc/../abc/file.png", False),
        ("{root}/abc/./file.png", False),
        ("/etc/passwd", False),
        ("{root}/abc", False),  # a folder
        ("{root}/abc/missing.png", False),
        ("abc/file.png", False),  # relative
        ("{root}/abc/link.png", False),  # a link out of the root
        ("https://example.com/file.png", False),
        ("{root}/abc/file.png\x00.txt", False),
        ("{root}\\abc\\file.png", False),
        ("{other}/secret.txt", False),
    ],
)
def test_the_file_route_serves_only_files_inside_the_roots(tmp_path, requested, allowed):
    root, other = tmp_path / "root", tmp_path / "other"
    (root / "abc").mkdir(parents=True)
    other.mkdir()
    (root / "abc" / "file.png").write_bytes(b"png")
    (other / "secret.txt").write_text("secret")
    (root / "abc" / "link.png").symlink_to(other / "secret.txt")
    assert file_request_allowed(requested.format(root=root, other=other), [root.resolve()]) is allowed


class ToyApp:
    """What Gradio does for the two routes: the file route returns 'served', the upload route stores the body
    in a new file and answers with its path."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].endswith("/upload"):
            stored = self.folder / f"upload-{self.calls}" / "video.mp4"
            stored.parent.mkdir(parents=True)
            stored.write_bytes(body)
            payload = json.dumps([str(stored)]).encode()
        else:
            payload = b"served"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})


def call(app, path: str, method: str = "GET", body: bytes = b"", headers=None, client="10.0.0.1"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "path": path, "method": method, "headers": raw_headers, "client": (client, 5000)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def test_the_guard_refuses_files_outside_the_roots_and_other_file_routes(tmp_path):
    root = tmp_path / "root"
    (root / "h").mkdir(parents=True)
    (root / "h" / "a.png").write_bytes(b"x")
    toy = ToyApp(root)
    guard = ServerGuard(toy, served_roots=[root])
    assert call(guard, f"/gradio_api/file={root}/h/a.png") == (200, "served")
    for path in (f"/gradio_api/file={root}/h/../../../etc/passwd", "/gradio_api/file=/etc/passwd",
                 f"/gradio_api/file/{root}/h/a.png", "/gradio_api/proxy=http://127.0.0.1/", "/file=/etc/passwd"):
        assert call(guard, path) == (403, "File not allowed."), path
    assert toy.calls == 1  # nothing refused reached the app


def test_the_guard_holds_uploads_to_the_size_and_the_budget(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    toy = ToyApp(root)
    budget = DiskBudget([root], total_bytes=None, per_client_bytes=100_000, grace=0)
    guard = ServerGuard(toy, served_roots=[root], budget=budget, max_upload_bytes=50_000, trust_forwarded=True)

    def post(size: int, client: str, declared: bool = True):
        headers = {"content-length": str(size)} if declared else {}
        return call(guard, "/gradio_api/upload", "POST", b"v" * size, {**headers, "x-forwarded-for": client})

    assert post(10, "1.1.1.1", declared=False) == (411, "Uploads must state their size (a Content-Length header).")
    status, text = post(200_000, "1.1.1.1")
    assert status == 413 and text == "This file is 200.0 kB; the largest upload here is 50.0 kB."
    stored = [json.loads(post(45_000, "1.1.1.1")[1])[0] for _ in range(3)]  # 45 kB each, 100 kB per client
    assert not Path(stored[0]).exists() and Path(stored[1]).exists() and Path(stored[2]).exists()
    assert budget.client_usage("1.1.1.1") == 90_000
    assert post(45_000, "2.2.2.2")[0] == 200 and Path(stored[1]).exists()  # another client, its own limit
    plain = ServerGuard(toy, served_roots=[root], budget=budget)  # behind no trusted proxy: the peer counts
    assert plain.client_of({"headers": [(b"x-forwarded-for", b"6.6.6.6")], "client": ("9.9.9.9", 1)}) == "9.9.9.9"
    assert guard.client_of({"headers": [(b"x-forwarded-for", b"6.6.6.6, 7.7.7.7")], "client": ("9.9.9.9", 1)}) \
        == "6.6.6.6"
