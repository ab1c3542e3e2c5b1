"""Run a producer in a background thread a bounded number of items ahead of its consumer.

Decoding overlaps encoding this way (the decoder waits on I/O and libav, the encoder on torch, and both
release the GIL), and memory stays at ``depth`` finished items however long the video is.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()


def iter_in_thread(make: Callable[[threading.Event], Iterator[T]], depth: int = 2, name: str = "univtg-prefetch"
                   ) -> Iterator[T]:
    """Items of ``make(stop)``, produced in a thread at most ``depth`` ahead.

    The producer should return soon after ``stop`` is set (it is set when the consumer stops early: ``break``,
    an exception, ``.close()``). Errors raised by the producer are raised in the consumer's thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in make(stop):
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = ready.get(timeout=0.5)
            except queue.Empty:
                if not worker.is_alive() and ready.empty():
                    raise RuntimeError(f"the {name} thread stopped without a result") from None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting to put
            try:
                ready.get_nowait()
            except queue.Empty:
                break
        worker.join(timeout=30)
        if worker.is_alive():
            logger.warning("the %s thread did not stop within 30 s", name)


__all__ = ["iter_in_thread"]
