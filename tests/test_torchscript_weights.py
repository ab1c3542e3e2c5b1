"""The TorchScript weights reader gives torch.jit.load's state_dict bit for bit, and refuses everything else.

The trusted archives are made here with torch.jit.trace / torch.jit.script (OpenAI's ViT-B-32.pt cannot be
downloaded in tests): one traced from open_clip's ViT-B-32 at random init the way OpenAI's was (fp16,
``encode_image`` / ``encode_text`` traced, ``input_resolution`` / ``context_length`` / ``vocab_size`` buffers),
and small ones covering every dtype, views that share a storage, non-contiguous strides, typed attributes and
constants. Hostile archives are assembled opcode by opcode.
"""

from __future__ import annotations

import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from univtg_core.errors import UnsafeFileError
from univtg_core.torchscript_weights import read_torchscript_state_dict


def _jit_state_dict(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").state_dict()  # the unsafe way: the reference


def assert_same_state_dict(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    """Same keys in the same order; every tensor of the same dtype, shape, strides and bytes."""
    assert list(ours) == list(reference)
    for key, expected in reference.items():
        got = ours[key]
        assert (got.dtype, tuple(got.shape), got.stride()) == (expected.dtype, tuple(expected.shape),
                                                               expected.stride()), key
        assert torch.equal(got.reshape(-1).contiguous().view(torch.uint8),
                           expected.reshape(-1).contiguous().view(torch.uint8)), key


def _script(module: torch.nn.Module, path: Path, trace_input: torch.Tensor | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.jit.trace(module, trace_input) if trace_input is not None else torch.jit.script(module)
        compiled.save(str(path))
    return path


class _Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4, bias=False)
        self.scale = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def forward(self, x):
        return self.proj(x) * self.scale


class _Everything(torch.nn.Module):
    """Parameters and buffers of every storage type, views of one storage, strides, typed attributes."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        base = torch.randn(6, 5, generator=gen)
        self.weight = torch.nn.Parameter(base)
        self.transposed = torch.nn.Parameter(torch.randn(5, 6, generator=gen).t())  # non-contiguous
        self.fp16 = torch.nn.Parameter(torch.randn(7, generator=gen).half())
        self.bf16 = torch.nn.Parameter(torch.randn(2, 3, generator=gen).bfloat16())
        self.register_buffer("ids", torch.arange(-5, 5, dtype=torch.int64))
        self.register_buffer("small", torch.arange(4, dtype=torch.int16))
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("uint8", torch.arange(250, 256, dtype=torch.uint8))
        self.register_buffer("signed", torch.arange(-3, 3, dtype=torch.int8))
        self.register_buffer("int32", torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32))
        self.register_buffer("cplx", torch.randn(3, generator=gen, dtype=torch.complex64))
        self.register_buffer("scalar", torch.tensor(7.25))
        self.register_buffer("empty", torch.zeros(0, 3))
        self.register_buffer("row", base[2])  # a view into the weight's storage, with an offset
        self.register_buffer("temp", torch.ones(2), persistent=False)
        self.counts: dict[str, int] = {"a": 1, "b": 2}
        self.extra: list[torch.Tensor] = [torch.ones(1)]
        self.label = "plain attribute"
        self.blocks = torch.nn.ModuleList([_Inner(), _Inner()])
        self.named = torch.nn.ModuleDict({"left": torch.nn.Linear(2, 2), "right": torch.nn.LayerNorm(2)})

    def forward(self, x):
        y = self.blocks[0](x) + self.blocks[1](x)
        return y.sum() + self.weight.sum() + self.extra[0].sum() + float(self.counts["a"])


_OFFSET = torch.arange(4.0)


class _WithConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) + _OFFSET  # a captured tensor: traced into constants.pkl


def test_scripted_module_of_every_dtype_matches_jit_load(tmp_path):
    path = _script(_Everything(), tmp_path / "everything.pt")
    ours = read_torchscript_state_dict(path)
    assert_same_state_dict(ours, _jit_state_dict(path))
    assert "row" in ours and ours["row"].storage_offset() == 10
    assert not ours["transposed"].is_contiguous()


def test_traced_module_with_constants_matches_jit_load(tmp_path):
    path = _script(_WithConstant(), tmp_path / "traced.pt", torch.zeros(1, 4))
    with zipfile.ZipFile(path) as zf:
        assert any("/constants/" in n for n in zf.namelist())
    assert_same_state_dict(read_torchscript_state_dict(path), _jit_state_dict(path))


@pytest.fixture(scope="module")
def openai_style_vit_b_32(tmp_path_factory):
    """open_clip's ViT-B-32 (random init, seed 0) traced and saved the way OpenAI released ViT-B-32.pt."""
    import open_clip

    cfg = open_clip.get_model_config("ViT-B-32")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.CLIP(**cfg, quick_gelu=True).eval()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(model, name):
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    image, text = torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, {"forward": (image, text), "encode_image": (image,),
                                                "encode_text": (text,)}, check_trace=False)
        traced = traced.half()  # OpenAI's archives hold fp16 weights
        path = tmp_path_factory.mktemp("openai") / "ViT-B-32.pt"
        traced.save(str(path))
    return path, reference


@pytest.mark.slow
def test_openai_style_vit_b_32_matches_jit_load_bit_for_bit(openai_style_vit_b_32):
    path, _ = openai_style_vit_b_32
    reference = _jit_state_dict(path)
    ours = read_torchscript_state_dict(path)
    assert len(ours) > 300 and ours["visual.conv1.weight"].dtype == torch.float16
    assert {"input_resolution", "context_length", "vocab_size"} <= set(ours)
    assert_same_state_dict(ours, reference)


@pytest.mark.slow
def test_openai_style_archive_loads_into_the_encoder(openai_style_vit_b_32):
    """Through load_clip_encoder: the encoder holds the random seed-0 weights, rounded to fp16 as saved."""
    from univtg_core.encoders import load_clip_encoder

    path, reference = openai_style_vit_b_32
    encoder = load_clip_encoder("ViT-B-32", weights=path, device="cpu")
    loaded = encoder.model.state_dict()
    for key in ("visual.conv1.weight", "positional_embedding", "transformer.resblocks.11.mlp.c_proj.weight",
                "text_projection", "logit_scale"):
        expected = reference[key].half().float().reshape(loaded[key].shape)
        assert torch.equal(loaded[key], expected), key


def _swap_archive_byte_order(src: Path, dst: Path, dtypes: dict[str, torch.dtype]) -> None:
    """Rewrite an archive as a big-endian machine would have written it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            key = info.filename.split("/", 1)[1]
            if key == "byteorder":
                data = b"big"
            elif key in dtypes:
                dtype = dtypes[key]
                size = torch.empty((), dtype=dtype).element_size()
                unit = size // 2 if dtype.is_complex else size
                data = np.frombuffer(data, np.uint8).reshape(-1, unit)[:, ::-1].tobytes()
            zout.writestr(info.filename, data)


class _Anything:
    """Stands for every global of a trusted test archive while its storage ids are collected."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _storage_dtypes(path: Path) -> dict[str, torch.dtype]:
    """data/<key> -> dtype, read from the persistent ids of a trusted archive's data.pkl."""
    import io
    import pickle

    from univtg_core.torchscript_weights import STORAGE_DTYPES

    found: dict[str, torch.dtype] = {}

    class Collector(pickle.Unpickler):
        def find_class(self, module, name):
            return STORAGE_DTYPES[name] if module == "torch" and name in STORAGE_DTYPES else _Anything

        def persistent_load(self, pid):
            found[f"data/{pid[2]}"] = pid[1]
            return None

    with zipfile.ZipFile(path) as zf:
        prefix = zf.namelist()[0].split("/")[0]
        Collector(io.BytesIO(zf.read(f"{prefix}/data.pkl"))).load()
    return found


def test_big_endian_archives_are_swapped(tmp_path):
    path = _script(_Everything(), tmp_path / "little.pt")
    dtypes = _storage_dtypes(path)
    assert {torch.float16, torch.bfloat16, torch.complex64, torch.int16, torch.bool} <= set(dtypes.values())
    swapped = tmp_path / "big.pt"
    _swap_archive_byte_order(path, swapped, dtypes)
    assert_same_state_dict(read_torchscript_state_dict(swapped), _jit_state_dict(path))


# -- hostile archives, assembled opcode by opcode -----------------------------------------------------------

CLASS_SOURCE = 'class M(Module):\n  __parameters__ = ["w", ]\n  __buffers__ = []\n  w : Tensor\n  training : bool\n'


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _i(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _tensor(key="0", numel=4, size=(4,), stride=(1,), offset=0, storage="FloatStorage", pid=None) -> bytes:
    pid = pid if pid is not None else _t(_s("storage"), _g("torch", storage), _s(key), _s("cpu"), _i(numel))
    return (_g("torch._utils", "_rebuild_tensor_v2")
            + _t(pid + b"Q", _i(offset), _t(*map(_i, size)), _t(*map(_i, stride)), b"\x89",
                 _g("collections", "OrderedDict") + b")R") + b"R")


def _module(attrs: dict[str, bytes], cls: tuple[str, str] = ("__torch__", "M")) -> bytes:
    return _g(*cls) + b")\x81}(" + b"".join(_s(k) + v for k, v in attrs.items()) + b"ub"


def _pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _archive(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None, code: str = CLASS_SOURCE,
             constants: bytes | None = None, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/code/__torch__.py", code)
        zf.writestr("archive/constants.pkl", constants if constants is not None else _pickle(b")"))
        zf.writestr("archive/version", "3\n")
        for key, payload in (storages if storages is not None else {"0": bytes(16)}).items():
            zf.writestr(f"archive/data/{key}", payload)
        for name, payload in (extra or {}).items():
            zf.writestr(name, payload)
    return path


def test_a_hand_assembled_archive_reads_like_torch(tmp_path):
    values = np.arange(4, dtype="<f4")
    path = _archive(tmp_path / "ok.pt", _pickle(_module({"w": _tensor(), "training": b"\x88"})),
                    {"0": values.tobytes()})
    ours = read_torchscript_state_dict(path)
    assert list(ours) == ["w"] and ours["w"].tolist() == [0, 1, 2, 3]
    assert_same_state_dict(ours, _jit_state_dict(path))


@pytest.mark.parametrize("name, data_pkl, kwargs, refused", [
    ("dangerous-global", _pickle(_g("posix", "system") + _t(_s("true")) + b"R"), {}, "posix.system"),
    ("open-global", _pickle(_module({"w": _g("io", "open") + _t(_s("marker"), _s("w")) + b"R"})), {}, "io.open"),
    ("undefined-class", _pickle(_module({"w": _tensor()}, cls=("__torch__.torch.classes.x", "Blob"))), {},
     "__torch__.torch.classes.x.Blob"),
    ("setstate", _pickle(_module({"w": _tensor()})),
     {"code": CLASS_SOURCE + "  def __setstate__(self, state: Dict[str, Tensor]) -> NoneType:\n    return None\n"},
     "__setstate__"),
    ("unknown-storage", _pickle(_module({"w": _tensor(storage="QInt8Storage")})), {}, "torch.QInt8Storage"),
    ("pid-not-storage", _pickle(_module({"w": _tensor(pid=_t(_s("module"), _s("x")))})), {}, "not a tensor storage"),
    ("storage-size", _pickle(_module({"w": _tensor(numel=5)})), {}, "holds 16 bytes"),
    ("out-of-bounds", _pickle(_module({"w": _tensor(size=(4,), stride=(2,))})), {}, "reaches element 6"),
    ("negative-offset", _pickle(_module({"w": _tensor(offset=-1)})), {}, "malformed offset"),
    ("missing-storage", _pickle(_module({"w": _tensor(key="7")})), {}, "data/7 is missing"),
    ("key-traversal", _pickle(_module({"w": _tensor(key="../x")})), {}, "not a plain name"),
    ("not-a-module", _pickle(_tensor()), {}, "not a TorchScript module"),
    ("constants-not-tensors", _pickle(_module({"w": _tensor()})), {"constants": _pickle(_t(_s("hello")))},
     "constants.pkl holds str"),
    ("constants-object", _pickle(_module({"w": _tensor()})),
     {"constants": _pickle(_t(_g("__torch__", "M") + b")\x81}b"))}, "constants.pkl holds"),
    ("reduce-on-class", _pickle(_g("__torch__", "M") + b")R"), {}, "like a function"),
])
def test_hostile_archives_are_refused_in_one_line(tmp_path, name, data_pkl, kwargs, refused):
    path = _archive(tmp_path / f"{name}.pt", data_pkl, **kwargs)
    with pytest.raises(UnsafeFileError) as info:
        read_torchscript_state_dict(path)
    message = str(info.value)
    assert refused in message and "\n" not in message and str(path) in message, message
    assert not (tmp_path / "marker").exists()


def test_zip_bombs_and_broken_zips_are_refused(tmp_path):
    # an entry that claims far more bytes than the file holds (deflate of zeros)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", _pickle(_module({"w": _tensor(numel=(300 << 20) // 4)})))
        zf.writestr("archive/code/__torch__.py", CLASS_SOURCE)
        zf.writestr("archive/data/0", bytes(300 << 20))
    with pytest.raises(UnsafeFileError, match="zip bomb"):
        read_torchscript_state_dict(bomb)
    good = _archive(tmp_path / "good.pt", _pickle(_module({"w": _tensor()})))
    data = good.read_bytes()
    for label, payload in (("truncated", data[: len(data) // 2]), ("random", np.random.default_rng(0).bytes(4096)),
                           ("empty", b"")):
        broken = tmp_path / f"{label}.pt"
        broken.write_bytes(payload)
        with pytest.raises(UnsafeFileError, match="cannot read .* as a TorchScript archive") as info:
            read_torchscript_state_dict(broken)
        assert "\n" not in str(info.value)
    dup = tmp_path / "dup.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        _archive(dup, _pickle(_module({"w": _tensor()})), extra={"archive/data/0": bytes(16)})
    with pytest.raises(UnsafeFileError, match="two entries"):
        read_torchscript_state_dict(dup)
