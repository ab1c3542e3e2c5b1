"""Read the weights of a TorchScript archive (OpenAI's released CLIP ``ViT-B-32.pt``) as data, never as code.

``torch.jit.load`` compiles the Python-like source stored in the archive and runs each class's
``__setstate__`` while it loads, so a crafted file runs whatever it likes (write files, read them, ...)
before anyone sees an error. Here nothing from the file is ever run:

1. the source files under ``code/`` are parsed with ``ast`` (never compiled or executed), only to learn
   each class's ``__parameters__`` and ``__buffers__``, whether it is a module, and whether it defines
   ``__setstate__`` (code that ``torch.jit.load`` would run: such an archive is refused);
2. ``data.pkl`` is unpickled with ``safe_pickle.RestrictedUnpickler``: the only globals are the tensor
   rebuild function, the storage types (they give the dtype), ``collections.OrderedDict``, TorchScript's
   typed-container tags and ``torch.device``; every ``__torch__`` class becomes an inert record of its
   attributes; storages resolve through ``persistent_load`` to the archive's ``data/<key>`` entries, read
   as little-endian or in the archive's ``byteorder``;
3. the records are walked as ``nn.Module.state_dict`` walks modules (each module's parameters, then its
   buffers, then its submodules, in slot order), giving the keys and tensors that
   ``torch.jit.load(path).state_dict()`` gives, bit for bit.

``constants.pkl`` (the constant tensors of traced code) must hold tensors and nothing else.
Anything else (another global, a persistent id that is not a storage, a size that does not fit its
storage, a zip bomb) raises ``UnsafeFileError`` with one line that names what was refused.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .errors import UnsafeFileError
from .safe_pickle import CONTAINER_GLOBALS, RestrictedUnpickler, allow_list

logger = logging.getLogger(__name__)

# The storage classes TorchScript's pickler names (``torch.<Type>Storage``); the name gives the dtype.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}

# Bounds that a real CLIP archive is far inside and a hostile one cannot push us past.
_MAX_PICKLE_BYTES = 256 << 20
_MAX_CODE_BYTES = 64 << 20
_MAX_DEPTH = 200
_MAX_DIMS = 64
_STORAGE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class _ScriptObject:
    """An inert stand-in for an object of one ``__torch__`` class: its attribute dict and nothing callable.

    ``info`` is set on the per-class subclass the unpickler hands out for that class.
    """

    info: ClassVar[_ClassInfo]
    __slots__ = ("state",)

    def __init__(self, *_args: Any):
        # NEWOBJ (how TorchScript pickles objects) never calls this; only a REDUCE would, which TorchScript
        # does not write.
        raise UnsafeFileError(f"it calls the TorchScript class {self.info.qualname} like a function")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnsafeFileError(f"its {self.info.qualname} object has a state that is not an attribute dict")
        object.__setattr__(self, "state", state)


@dataclass(frozen=True)
class _ClassInfo:
    """What ``code/`` says about one class (from its source text, never run)."""

    qualname: str
    is_module: bool
    parameters: frozenset[str]
    buffers: frozenset[str]
    methods: frozenset[str]


class _StorageType:
    """A storage class named by the pickle (``torch.FloatStorage``): only its dtype matters."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: torch.dtype):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __setattr__(self, name: str, value: Any) -> None:
        raise UnsafeFileError(f"it tries to change the storage type torch.{self.name}")


@dataclass(frozen=True)
class _Storage:
    """One ``data/<key>`` entry: ``numel`` elements of ``dtype``."""

    member: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class _TensorStub:
    """A tensor as the pickle describes it; its bytes are read only if it goes into the state dict."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def read_torchscript_state_dict(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """The ``state_dict()`` that ``torch.jit.load(path)`` would give (CPU tensors), read without running code.

    Raises UnsafeFileError, with one line naming the refused global, class or entry, for an archive that
    would run code or that is not a TorchScript archive of tensors.
    """
    path = Path(path)
    label = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _ArchiveReader(zf, label, path.stat().st_size).state_dict()
    except UnsafeFileError as exc:
        message = str(exc)
        if not message.startswith(("refused", "cannot")):
            message = f"refused to load {label} as TorchScript weights: {message}"
        raise UnsafeFileError(message) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, pickle.UnpicklingError, ValueError,
            TypeError, KeyError, IndexError, AttributeError, RecursionError, MemoryError, UnicodeDecodeError,
            RuntimeError, struct.error, NotImplementedError, OverflowError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "no details"
        raise UnsafeFileError(f"cannot read {label} as a TorchScript archive ({type(exc).__name__}: {detail})") \
            from exc


class _ArchiveReader:
    """One open archive: its folder prefix, byte order, class table and storages."""

    def __init__(self, zf: zipfile.ZipFile, label: str, file_size: int):
        self.zf = zf
        self.label = label
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UnsafeFileError(f"it holds two entries named {dup!r}")
        self.members = {i.filename: i for i in infos}
        roots = [n[: -len("data.pkl")] for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(roots) != 1:
            raise UnsafeFileError(
                "expected one <archive>/data.pkl, found "
                f"{len(roots)} (is it a TorchScript archive saved by torch.jit.save?)")
        self.prefix = roots[0]
        # Tensor bytes may not expand beyond what the file could hold uncompressed (zip bombs).
        self.byte_budget = 4 * file_size + (64 << 20)
        self.little_endian = self._byteorder() == "little"
        self.classes = self._parse_classes()
        self._storages: dict[str, _Storage] = {}
        self._flat: dict[str, torch.Tensor] = {}

    # -- archive entries --------------------------------------------------------------------------------
    def _read(self, member: str, limit: int) -> bytes:
        info = self.members.get(member)
        if info is None:
            raise UnsafeFileError(f"it has no entry {member!r}")
        if info.file_size > limit:
            raise UnsafeFileError(f"its entry {member!r} is {info.file_size} bytes (limit {limit})")
        return self.zf.read(info)

    def _byteorder(self) -> str:
        member = self.prefix + "byteorder"
        if member not in self.members:
            return "little"  # archives written before torch recorded it (OpenAI's) are little-endian
        order = self._read(member, 16).decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise UnsafeFileError(f"its byteorder entry says {order!r}; expected 'little' or 'big'")
        return order

    # -- class table from code/ ---------------------------------------------------------------------------
    def _parse_classes(self) -> dict[str, _ClassInfo]:
        code_dir = self.prefix + "code/"
        classes: dict[str, _ClassInfo] = {}
        total = 0
        for member, info in self.members.items():
            if not (member.startswith(code_dir) and member.endswith(".py")):
                continue
            total += info.file_size
            if total > _MAX_CODE_BYTES:
                raise UnsafeFileError(f"its code/ folder holds more than {_MAX_CODE_BYTES} bytes of source")
            module = member[len(code_dir): -len(".py")].replace("/", ".")
            source = self._read(member, _MAX_CODE_BYTES).decode("utf-8")
            try:
                tree = ast.parse(source, filename=member)  # parsed only, never compiled or run
            except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
                raise UnsafeFileError(f"its {member!r} is not TorchScript source ({type(exc).__name__})") from None
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    qualname = f"{module}.{node.name}"
                    classes[qualname] = _class_info(qualname, node)
        return classes

    # -- pickles ----------------------------------------------------------------------------------------
    def _unpickle(self, name: str, folder: str) -> Any:
        data = self._read(self.prefix + name, _MAX_PICKLE_BYTES)
        return _ArchiveUnpickler(io.BytesIO(data), self, folder, what=f"{self.label} ({name})").load()

    def storage(self, pid: Any, folder: str) -> _Storage:
        """``persistent_load``: ``('storage', torch.<Type>Storage, key, location, numel)`` -> a _Storage."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeFileError(f"it refers to an external object {_short(pid)} that is not a tensor storage")
        _, kind, key, location, numel = pid
        if not isinstance(kind, _StorageType):
            raise UnsafeFileError(f"its storage {_short(key)} has no storage type")
        if not (isinstance(key, str) and _STORAGE_KEY.match(key)):
            raise UnsafeFileError(f"its storage key {_short(key)} is not a plain name")
        if not isinstance(location, str) or not (isinstance(numel, int) and not isinstance(numel, bool)):
            raise UnsafeFileError(f"its storage {key!r} has a malformed location or size")
        member = f"{self.prefix}{folder}/{key}"
        known = self._storages.get(member)
        if known is not None:
            if known.dtype != kind.dtype or known.numel != numel:
                raise UnsafeFileError(f"its storage {folder}/{key} is described two different ways")
            return known
        info = self.members.get(member)
        if info is None:
            raise UnsafeFileError(f"its storage {folder}/{key} is missing from the archive")
        itemsize = torch.empty((), dtype=kind.dtype).element_size()
        if numel < 0 or info.file_size != numel * itemsize:
            raise UnsafeFileError(f"its storage {folder}/{key} holds {info.file_size} bytes, not the {numel} "
                                  f"x {itemsize} bytes its torch.{kind.name} claims")
        self.byte_budget -= info.file_size
        if self.byte_budget < 0:
            raise UnsafeFileError("it declares far more tensor bytes than the file could hold (a zip bomb?)")
        storage = _Storage(member, kind.dtype, numel)
        self._storages[member] = storage
        return storage

    def _flat_tensor(self, storage: _Storage) -> torch.Tensor:
        flat = self._flat.get(storage.member)
        if flat is None:
            info = self.members[storage.member]
            buffer = bytearray(info.file_size)
            with self.zf.open(info) as handle:
                view, done = memoryview(buffer), 0
                while done < len(buffer):
                    n = handle.readinto(view[done:])
                    if not n:
                        raise UnsafeFileError(f"its storage {storage.member!r} ends early")
                    done += n
            if not self.little_endian and len(buffer):
                itemsize = len(buffer) // storage.numel
                unit = itemsize // 2 if storage.dtype.is_complex else itemsize
                swapped = np.frombuffer(buffer, np.uint8).reshape(-1, unit)[:, ::-1]
                buffer = bytearray(swapped.tobytes())
            flat = torch.frombuffer(buffer, dtype=storage.dtype) if buffer else torch.empty(0, dtype=storage.dtype)
            self._flat[storage.member] = flat
        return flat

    def tensor(self, stub: _TensorStub) -> torch.Tensor:
        return torch.as_strided(self._flat_tensor(stub.storage), stub.size, stub.stride, stub.offset)

    # -- the state dict ---------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        if self.prefix + "constants.pkl" in self.members:
            constants = self._unpickle("constants.pkl", "constants")
            if not isinstance(constants, tuple) or not all(isinstance(c, _TensorStub) for c in constants):
                kinds = sorted({type(c).__name__ for c in (constants if isinstance(constants, tuple) else
                                                              [constants]) if not isinstance(c, _TensorStub)})
                raise UnsafeFileError(f"its constants.pkl holds {', '.join(kinds)}, not only tensors")
        root = self._unpickle("data.pkl", "data")
        if not (isinstance(root, _ScriptObject) and root.info.is_module):
            raise UnsafeFileError(f"its data.pkl holds {type(root).__name__}, not a TorchScript module")
        stubs: OrderedDict[str, _TensorStub] = OrderedDict()
        _collect(root, "", stubs, set(), 0)
        out = OrderedDict((key, self.tensor(stub)) for key, stub in stubs.items())
        logger.debug("read %d tensors from TorchScript archive %s", len(out), self.label)
        return out


def _class_info(qualname: str, node: ast.ClassDef) -> _ClassInfo:
    names: dict[str, frozenset[str]] = {"__parameters__": frozenset(), "__buffers__": frozenset()}
    methods = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            methods.add(item.name)
        elif (isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name)
              and item.targets[0].id in names):
            value = item.value
            if not (isinstance(value, ast.List) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                        for e in value.elts)):
                raise UnsafeFileError(f"its class {qualname} lists {item.targets[0].id} in an unexpected form")
            names[item.targets[0].id] = frozenset(e.value for e in value.elts)
    is_module = any(isinstance(b, ast.Name) and b.id == "Module" for b in node.bases)
    return _ClassInfo(qualname, is_module, names["__parameters__"], names["__buffers__"], frozenset(methods))


class _ArchiveUnpickler(RestrictedUnpickler):
    """The restricted unpickler plus the archive's own classes, each mapped to an inert record type."""

    def __init__(self, file: io.BytesIO, archive: _ArchiveReader, folder: str, *, what: str):
        self._archive = archive
        self._folder = folder
        self._records: dict[str, type] = {}
        extra: dict[tuple[str, str], Any] = {
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch.jit._pickle", "restore_type_tag"): self._restore_type_tag,
            ("torch", "device"): self._device,
        }
        for builder in ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"):
            extra[("torch.jit._pickle", builder)] = self._build_list
        for name, dtype in STORAGE_DTYPES.items():
            extra[("torch", name)] = _StorageType(name, dtype)
        super().__init__(file, allow_list(CONTAINER_GLOBALS, extra), what=what,
                         persistent_load=lambda pid: archive.storage(pid, folder))

    def find_class(self, module: str, name: str) -> Any:
        if module != "__torch__" and not module.startswith("__torch__."):
            return super().find_class(module, name)
        qualname = f"{module}.{name}"
        record = self._records.get(qualname)
        if record is not None:
            return record
        info = self._archive.classes.get(qualname)
        if info is None:
            raise UnsafeFileError(f"refused to load {self._archive.label}: it refers to the TorchScript class "
                                  f"{qualname}, which its code/ does not define (a built-in class would run "
                                  "its own __setstate__)")
        if "__setstate__" in info.methods:
            raise UnsafeFileError(f"refused to load {self._archive.label}: its class {qualname} defines "
                                  "__setstate__, code that torch.jit.load would run while loading")
        record = type(f"ScriptObject[{qualname}]", (_ScriptObject,), {"__slots__": (), "info": info})
        self._records[qualname] = record
        return record

    # The only callables a TorchScript pickle may name; each builds data and validates what it is given.
    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                        hooks: Any = None, metadata: Any = None) -> _TensorStub:
        if not isinstance(storage, _Storage):
            raise UnsafeFileError("it rebuilds a tensor from something that is not one of its storages")
        if not (_is_int(offset) and offset >= 0 and _int_tuple(size) and _int_tuple(stride)
                and len(size) == len(stride) <= _MAX_DIMS and isinstance(requires_grad, bool)):
            raise UnsafeFileError(f"it describes a tensor of {storage.member!r} with a malformed offset, size or "
                                  "stride")
        if hooks or metadata:
            raise UnsafeFileError(f"its tensor of {storage.member!r} carries backward hooks or metadata")
        if any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise UnsafeFileError(f"its tensor of {storage.member!r} has a negative size or stride")
        if all(s > 0 for s in size):
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.numel:
                raise UnsafeFileError(f"its tensor of shape {tuple(size)} reaches element {last} of "
                                      f"{storage.member!r}, which holds {storage.numel}")
        return _TensorStub(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))

    def _restore_type_tag(self, value: Any, type_str: Any) -> Any:  # noqa: ARG002 - the unpickler hook's signature
        return value

    def _build_list(self, items: Any) -> list:
        if not isinstance(items, list):
            raise UnsafeFileError("it builds a typed list from something that is not a list")
        return items

    def _device(self, spec: Any) -> str:
        if not isinstance(spec, str):
            raise UnsafeFileError("it names a device that is not a string")
        return spec


def _collect(obj: _ScriptObject, prefix: str, out: OrderedDict, active: set[int], depth: int) -> None:
    """``nn.Module.state_dict``'s walk: parameters, then buffers, then submodules, each in slot order."""
    if depth > _MAX_DEPTH or id(obj) in active:
        raise UnsafeFileError(f"its modules nest {'in a cycle' if id(obj) in active else 'too deeply'} at "
                              f"{prefix or '<root>'}")
    state = getattr(obj, "state", None)
    if state is None:
        raise UnsafeFileError(f"its {obj.info.qualname} object at {prefix or '<root>'} has no attributes")
    info = obj.info
    for wanted in (info.parameters, info.buffers):
        for name, value in state.items():
            if name in wanted and value is not None:
                if not isinstance(value, _TensorStub):
                    raise UnsafeFileError(f"its parameter or buffer {prefix}{name} is not a tensor")
                out[prefix + name] = value
    active.add(id(obj))
    for name, value in state.items():
        if isinstance(value, _ScriptObject) and value.info.is_module:
            _collect(value, f"{prefix}{name}.", out, active, depth + 1)
    active.discard(id(obj))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(_is_int(v) for v in value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["STORAGE_DTYPES", "read_torchscript_state_dict"]
