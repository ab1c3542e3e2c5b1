"""The name -> backend table, the one function that opens a file with a backend, and their logging.

A backend's module (and its library: PyAV, decord) is imported only when a file is opened with it, so
importing `univtg_core.video` stays cheap and a missing library only removes that backend. To add one:
write a `Reader` subclass in its own module and add a loader here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ..errors import VideoReadError
from .reader import Reader, check_file

logger = logging.getLogger(__name__)


def _pyav() -> type[Reader]:
    from .pyav_reader import PyAVReader

    return PyAVReader


def _decord() -> type[Reader]:
    from .decord_reader import DecordReader

    return DecordReader


# name -> loader of the backend's Reader class; a loader raises ImportError when its library is missing.
READERS: dict[str, Callable[[], type[Reader]]] = {"pyav": _pyav, "decord": _decord}
# What "auto" takes: the first one installed. PyAV gives the official pixels, reads more formats (AV1) and
# says more about a broken file; a file it cannot open is refused, not handed to decord, whose pixels are not
# the official ones and whose FFmpeg is older (it would also print its own errors on stderr).
AUTO_ORDER = ("pyav", "decord")
BACKENDS = ("auto", *READERS)
# Set by `silence_decoder_logs`: backends whose native code prints to stderr keep it quiet while opening.
native_logs_quiet = False


def open_reader(path: str | os.PathLike, backend: str) -> Reader:
    """Open with the named backend; ``"auto"`` is the first of `AUTO_ORDER` that is installed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    p = str(check_file(path).resolve())
    for name in AUTO_ORDER if backend == "auto" else (backend,):
        try:
            reader_class = READERS[name]()
        except ImportError:
            logger.debug("video backend %s is not installed", name)
            continue
        return reader_class(p)
    raise VideoReadError(
        f"no video backend is installed for {backend!r}; install PyAV (`pip install av`) or decord"
    )


def silence_decoder_logs(verbose: bool = False) -> None:
    """Keep the decoder libraries' own messages off stderr (a command line shows one ``error:`` line).

    FFmpeg's messages (through PyAV, which routes them to the ``libav`` logger once any code sets its level)
    are shown only with ``verbose``; decord's C++ layer, which writes to the process's stderr itself, is
    silenced while it opens a file. What the libraries say about a file that fails still reaches the user
    in our error message.
    """
    logging.getLogger("libav").setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)
    global native_logs_quiet
    native_logs_quiet = not verbose
