"""Unpickling with an allow-list, for pickles that come from strangers.

Guidance score files, PySlowFast's Caffe2 weights, GloVe vocabularies and the data pickle inside a TorchScript
archive are all pickles. A plain `pickle.load` runs whatever callable the file names; here every global the
file refers to must be on an explicit allow-list, so the file can build data (arrays, dicts, lists, numbers,
strings) and nothing else. Anything else is refused before it is called, with the global's name in the message.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .errors import UnsafeFileError

# The globals numpy's own pickles use to rebuild arrays, dtypes and scalars, under the module names of
# numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`): a file written by either must load under either.
NUMPY_GLOBALS = (
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",  # protocol 5 arrays
    "numpy._core.numeric._frombuffer",
    "numpy.ndarray",
    "numpy.dtype",
)

# Plain containers that pickle through a global (dict, list, tuple, str, int, float, bool, None, bytes need none).
CONTAINER_GLOBALS = (
    "collections.OrderedDict",
    "builtins.set",
    "builtins.frozenset",
    "builtins.complex",
)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles spell bytes as `_codecs.encode(text, "latin1")`: allow exactly that, no other codec."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise UnsafeFileError(f"refused a pickle that encodes bytes with codec {encoding!r}")
    return text.encode("latin1")


def _resolve(qualified: str) -> tuple[tuple[str, str], Any]:
    import importlib

    module, _, name = qualified.rpartition(".")
    if module.startswith(("numpy.core.", "numpy._core.")):
        # Resolve both spellings to whatever this numpy provides, without importing the deprecated alias.
        import numpy as np

        core = getattr(np, "_core", None) or np.core
        return (module, name), getattr(getattr(core, module.rpartition(".")[2]), name)
    return (module, name), getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` answers only for allow-listed globals.

    `extra` maps (module, name) to a replacement object: how a TorchScript reader maps module classes to
    inert records. `persistent_load` refuses unless a loader is given (a torch archive's storages).
    """

    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any], *, what: str,
                 persistent_load: Callable[[Any], Any] | None = None, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._what = what
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"refused to load {self._what}: it refers to {module}.{name}, which is not allowed in this kind of "
                f"file (it could run code); only plain data is accepted") from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeFileError(f"refused to load {self._what}: it refers to external objects (persistent ids)")
        return self._persistent(pid)


def allow_list(names: Iterable[str], extra: Mapping[tuple[str, str], Any] | None = None) -> dict:
    """(module, name) -> object for dotted names, plus explicit replacements."""
    table = dict(_resolve(n) for n in names)
    table[("_codecs", "encode")] = _latin1_bytes
    table.update(extra or {})
    return table


def load(source: str | os.PathLike | bytes | BinaryIO, *, allow: Iterable[str] = (), numpy: bool = True,
         what: str | None = None, encoding: str = "ASCII",
         extra: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle `source` (a path, bytes or a binary file) allowing only plain data and the named globals.

    numpy arrays are allowed unless `numpy=False`. `encoding="latin1"` reads Python 2 pickles (Caffe2 weights).
    Raises UnsafeFileError naming the refused global, or for a file that is not a pickle at all.
    """
    names = list(CONTAINER_GLOBALS) + list(allow) + (list(NUMPY_GLOBALS) if numpy else [])
    table = allow_list(names, extra)
    if isinstance(source, (bytes, bytearray)):
        label, handle, close = what or "pickle data", io.BytesIO(source), False
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = what or str(path)
        try:
            handle, close = open(path, "rb"), True
        except OSError as exc:
            raise UnsafeFileError(f"cannot open {label}: {exc.strerror or exc}") from exc
    else:
        label, handle, close = what or "pickle data", source, False
    try:
        return RestrictedUnpickler(handle, table, what=label, encoding=encoding).load()
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise UnsafeFileError(f"cannot read {label}: not a valid pickle ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else 'no details'})") from exc
    finally:
        if close:
            handle.close()


__all__ = ["CONTAINER_GLOBALS", "NUMPY_GLOBALS", "RestrictedUnpickler", "allow_list", "load"]
