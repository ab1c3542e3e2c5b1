"""What the server lets through before Gradio sees a request: its file route and its upload route.

`ServerGuard` is ASGI middleware given to Gradio's app (`launch(app_kwargs={"middleware": [...]})`):

- the file route (`/gradio_api/file=PATH`) serves only files under the folders the app writes to (Gradio's
  upload and cache folder, the examples cache). A path with `..`, a relative or non-absolute path, a link
  that leads elsewhere, a URL (Gradio would fetch it) and the older `/file/` and `/proxy=` routes are
  refused. Inside those folders every file name carries a hash of the content seeded with the server's
  secret, so a file's address is known only to the session it was returned to (or that uploaded it).
- the upload route needs a declared size, takes nothing larger than the largest upload allowed, and asks
  the `DiskBudget` for room (per client and in total) before a byte is stored; refusals are one sentence
  in plain text, which Gradio's page shows as it is.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import anyio

from .storage import BudgetExceeded, DiskBudget, format_bytes

logger = logging.getLogger(__name__)

API_PREFIX = "/gradio_api"
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file itself


def file_request_allowed(requested: str, roots: Sequence[Path]) -> bool:
    """Whether the file route may serve `requested` (the path after `file=`): an existing regular file,
    named by its absolute, normalised, link-free path inside one of `roots`."""
    if not requested or "\x00" in requested or "\\" in requested or "://" in requested:
        return False
    if not requested.startswith("/") or any(part in (".", "..") for part in requested.split("/")):
        return False
    normal = os.path.normpath(requested)
    real = os.path.realpath(requested)
    if real != normal:  # a symbolic link somewhere on the way
        return False
    path = Path(real)
    return path.is_file() and any(root in path.parents for root in roots)


def _route(path: str) -> str:
    return path[len(API_PREFIX):] if path.startswith(API_PREFIX + "/") else path


async def _plain(send, status: int, message: str) -> None:
    body = message.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ServerGuard:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app, *, served_roots: Sequence[str | Path], budget: DiskBudget | None = None,
                 max_upload_bytes: int | None = None, trust_forwarded: bool = False):
        self.app = app
        self.served_roots = [Path(r).resolve() for r in served_roots]
        self.budget = budget
        self.max_upload_bytes = max_upload_bytes
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = _route(scope.get("path", ""))
        if route.startswith("/file="):
            if not file_request_allowed(route[len("/file="):], self.served_roots):
                return await _plain(send, 403, "File not allowed.")
        elif route.startswith(("/file/", "/proxy=")):
            return await _plain(send, 403, "File not allowed.")
        elif route == "/upload" and scope.get("method") == "POST":
            return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    def client_of(self, scope) -> str:
        """Who is uploading: the peer's address, or the first forwarded address behind a trusted proxy."""
        if self.trust_forwarded:
            for name, value in scope.get("headers", []):
                if name == b"x-forwarded-for" and value:
                    return value.decode("latin-1").split(",")[0].strip()
        client = scope.get("client")
        return client[0] if client else "unknown"

    async def _upload(self, scope, receive, send):
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is None or not length.isdigit():
            return await _plain(send, 411, "Uploads must state their size (a Content-Length header).")
        size = int(length)
        if self.max_upload_bytes is not None and size > self.max_upload_bytes + MULTIPART_SLACK:
            return await _plain(send, 413, f"This file is {format_bytes(size)}; the largest upload here is "
                                           f"{format_bytes(self.max_upload_bytes)}.")
        if self.budget is None:
            return await self.app(scope, receive, send)
        client = self.client_of(scope)
        try:
            await anyio.to_thread.run_sync(self.budget.admit_upload, client, size)
        except BudgetExceeded as exc:
            logger.info("upload of %s from %s refused: %s", format_bytes(size), client, exc)
            return await _plain(send, exc.status, str(exc))
        status: list[int] = []
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and status and status[0] == 200:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.budget.release(size)
        if status and status[0] == 200:
            try:
                paths = json.loads(bytes(body))
            except ValueError:
                paths = []
            if isinstance(paths, list):
                self.budget.record_upload(client, [p for p in paths if isinstance(p, str)])
