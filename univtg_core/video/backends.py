"""The name -> backend table and the one function that opens a file with a backend.

A backend's module (and its library: PyAV, decord) is imported only when a file is opened with it, so
importing `univtg_core.video` stays cheap and a missing library only removes that backend. To add one:
write a `Reader` subclass in its own module and add a loader here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ..errors import VideoReadError
from .reader import NoFrames, Reader, check_file

logger = logging.getLogger(__name__)


def _pyav() -> type[Reader]:
    from .pyav_reader import PyAVReader

    return PyAVReader


def _decord() -> type[Reader]:
    from .decord_reader import DecordReader

    return DecordReader


# name -> loader of the backend's Reader class; a loader raises ImportError when its library is missing.
READERS: dict[str, Callable[[], type[Reader]]] = {"pyav": _pyav, "decord": _decord}
# What "auto" tries, in order: PyAV reads more formats and says more about a broken file.
AUTO_ORDER = ("pyav", "decord")
BACKENDS = ("auto", *READERS)


def open_reader(path: str | os.PathLike, backend: str) -> Reader:
    """Open with the named backend; ``"auto"`` is PyAV, then decord if PyAV is missing or fails.

    When both fail, PyAV's reason is reported: it reads more formats and says more about the file.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    p = str(check_file(path).resolve())
    names = AUTO_ORDER if backend == "auto" else (backend,)
    first_error: VideoReadError | None = None
    for name in names:
        try:
            reader = READERS[name]()(p)
        except ImportError:
            logger.debug("video backend %s is not installed", name)
            continue
        except NoFrames:
            raise
        except VideoReadError as exc:
            first_error = first_error or exc
            continue
        if first_error is not None:
            logger.info("%s: read with %s after: %s", p, name, first_error)
        return reader
    if first_error is not None:
        raise first_error
    raise VideoReadError(
        f"no video backend is installed for {backend!r}; install PyAV (`pip install av`) or decord"
    )
