"""Crafted files from strangers: each carries a payload that creates a marker file when loaded the unsafe way.

For each kind (UniVTG checkpoint for ``--resume``, TorchScript and torch.save CLIP weights for
``--clip-weights``, a guidance score pickle, SlowFast's Caffe2 pickle and .pyth checkpoint, a MESM GloVe
vocabulary) the unsafe loader is first shown to run the payload (the marker appears: the test could fail),
then ours must refuse it in one line naming what it refused, with the marker absent, through the Python API
(and the CLI where it takes the file). Truncated and random-bytes versions get one clear line each.
"""

from __future__ import annotations

import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from univtg_core import safe_pickle
from univtg_core.errors import UniVTGError

from .conftest import TINY_MODEL
from .corpus import CODECS, write_standard
from .report import Row


class _CreatesFile:
    """Unpickled the unsafe way, this opens (creates) ``path``: the payload of every crafted file here."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _globals_named(data: bytes) -> set[str]:
    """The module.name of every GLOBAL a pickle refers to (what a refusal message must name)."""
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            names.add(".".join(strings[-2:]))
    return names


def _payload_global(marker: Path) -> str:
    (name,) = _globals_named(pickle.dumps(_CreatesFile(marker), protocol=2))
    return name


def _broken_versions(good: Path, folder: Path) -> list[Path]:
    data = good.read_bytes()
    out = []
    for label, payload in (("truncated", data[: len(data) // 2]), ("random", np.random.default_rng(1).bytes(4096))):
        path = folder / f"{label}-{good.name}"
        path.write_bytes(payload)
        out.append(path)
    return out


def _refuse_broken_versions(good: Path, folder: Path, load, cli) -> str:
    """Truncated and random-bytes copies of ``good``: one clear line from ``load`` and from the CLI (``cli``)."""
    lines = []
    for path in _broken_versions(good, folder):
        with pytest.raises(UniVTGError) as info:
            load(path)
        _assert_one_line(str(info.value), path.name)
        lines.append(_cli_error(cli(path))[:90])
    return " | ".join(lines)


def _assert_one_line(message: str, *fragments: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crafted-video") / "clip.mp4"
    write_standard(path, CODECS["h264"])
    return path


def _cli(sandbox, video: Path, tmp_path: Path, *extra: str) -> dict:
    argv = ["predict", str(video), "--query", "a red square", "--clip-model", TINY_MODEL, "--clip-weights",
            "random", "--cache-dir", str(tmp_path / "cache"), *extra]
    answer = sandbox.request("cli", argv=argv)
    assert answer["status"] == "result", answer
    return answer


def _cli_error(answer: dict) -> str:
    errors = [line for line in answer["stderr"].splitlines() if line.startswith("error:")]
    assert answer["rc"] == 2 and len(errors) == 1 and "Traceback" not in answer["stderr"], answer["stderr"]
    return errors[0]


# -- UniVTG checkpoints (--resume) ---------------------------------------------------------------------------

def _checkpoint(path: Path, opt) -> Path:
    torch.save({"model": {"saliency_proj1.weight": torch.zeros(2, 2)}, "opt": opt, "epoch": 3}, path)
    return path


def test_crafted_checkpoint_is_refused(tmp_path, sandbox, video, report, request):
    from univtg_core import load_model

    marker = tmp_path / "marker"
    path = _checkpoint(tmp_path / "model_best.ckpt", _CreatesFile(marker))
    row = report.add(Row("crafted files", "checkpoint", "checkpoint payload", "a --resume checkpoint whose "
                         "pickle opens a file", "refused, marker absent", nodeid=request.node.nodeid))
    torch.load(path, weights_only=False)  # the unsafe way: the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UniVTGError) as info:
        load_model(path, device="cpu")
    _assert_one_line(str(info.value))
    line = _cli_error(_cli(sandbox, video, tmp_path, "--resume", str(path)))
    row.outcome = f"refused: {line[:160]}"
    assert not marker.exists()


class _RunsCommand:
    """A payload through a module torch blocks outright (os): the case torch words differently (item 2)."""

    def __init__(self, path: Path):
        self.command = f"touch {path}"

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_checkpoint_refusal_names_the_global(tmp_path, report, request):
    from univtg_core import load_model

    row = report.add(Row("crafted files", "checkpoint", "checkpoint os.system payload",
                         "a --resume checkpoint whose pickle calls os.system", "refused naming posix.system",
                         nodeid=request.node.nodeid))
    marker = tmp_path / "marker"
    path = _checkpoint(tmp_path / "model_best.ckpt", _RunsCommand(marker))
    (refused,) = _globals_named(pickle.dumps(_RunsCommand(marker), protocol=2))
    with pytest.raises(UniVTGError) as info:
        load_model(path, device="cpu")
    row.outcome = f"refused: {str(info.value)[:160]}"
    assert not marker.exists()
    _assert_one_line(str(info.value), refused)


def test_truncated_and_random_checkpoints_give_one_line(tmp_path, sandbox, video, report, request):
    from univtg_core import load_model

    good = _checkpoint(tmp_path / "model.ckpt", None)
    row = report.add(Row("crafted files", "checkpoint", "checkpoint truncated / random bytes",
                         "a half checkpoint and 4 KiB of random bytes as --resume", "one clear line each",
                         nodeid=request.node.nodeid))
    row.outcome = _refuse_broken_versions(good, tmp_path, lambda p: load_model(p, device="cpu"),
                                          lambda p: _cli(sandbox, video, tmp_path, "--resume", str(p)))


def test_torchscript_archive_as_checkpoint_runs_nothing(tmp_path, torchscript_payload):
    """torch.load(weights_only=True) must not hand a TorchScript archive to torch.jit.load."""
    from univtg_core import load_model

    path, marker = torchscript_payload(tmp_path)
    with warnings.catch_warnings(record=True) as seen, pytest.raises(UniVTGError) as info:
        warnings.simplefilter("always")
        load_model(path, device="cpu")
    _assert_one_line(str(info.value), "TorchScript archive")
    assert not marker.exists()
    assert not [str(w.message) for w in seen]  # recognised before torch.load (which would warn "dispatching")


# -- TorchScript CLIP weights (--clip-weights) ---------------------------------------------------------------

class _SetstateWritesFile(torch.nn.Module):
    """A module whose TorchScript __setstate__ creates a file (torch.from_file with shared=True opens O_CREAT)."""

    def __init__(self, path: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.path = path

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return self.weight, self.path, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.path = state[1]
        self.training = state[2]
        self.weight = state[0] + torch.from_file(self.path, shared=True, size=2, dtype=torch.float32) * 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


@pytest.fixture
def torchscript_payload():
    def make(folder: Path) -> tuple[Path, Path]:
        marker = folder / "marker"
        path = folder / "ViT-B-32.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.script(_SetstateWritesFile(str(marker))).save(str(path))
        assert not marker.exists()
        return path, marker

    return make


def _jit_load(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(path))  # the unsafe way, on purpose: the payload must run here


def test_crafted_torchscript_clip_is_refused(tmp_path, torchscript_payload, sandbox, video, report, request):
    from univtg_core.encoders import load_clip_encoder

    path, marker = torchscript_payload(tmp_path)
    row = report.add(Row("crafted files", "torchscript", "TorchScript __setstate__ payload",
                         "--clip-weights archive whose __setstate__ creates a file", "refused, marker absent",
                         nodeid=request.node.nodeid))
    _jit_load(path)  # the unsafe way: the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UniVTGError) as info:
        load_clip_encoder(TINY_MODEL, weights=path, device="cpu")
    _assert_one_line(str(info.value), "__setstate__", "__torch__")
    answer = sandbox.request("cli", argv=["predict", str(video), "--query", "a red square", "--clip-model",
                                          TINY_MODEL, "--clip-weights", str(path)])
    line = _cli_error(answer)
    _assert_one_line(line, "__setstate__")
    row.outcome = f"refused: {line[:160]}"
    assert not marker.exists()


def _plain_archive(folder: Path) -> Path:
    path = folder / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    return path


def _replace_member(src: Path, dst: Path, member_suffix: str, payload: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, payload if info.filename.endswith(member_suffix) else zin.read(info))


def test_torchscript_data_pickle_with_a_dangerous_global_is_refused(tmp_path, report, request):
    from univtg_core.encoders import load_clip_encoder

    marker = tmp_path / "marker"
    plain = _plain_archive(tmp_path)
    evil_pickle = pickle.dumps(_CreatesFile(marker), protocol=2)
    pickle.loads(evil_pickle)  # the unsafe way: the payload runs
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "edited.pt"
    _replace_member(plain, path, "/data.pkl", evil_pickle)
    row = report.add(Row("crafted files", "torchscript", "TorchScript data.pkl edited",
                         "--clip-weights archive whose data.pkl calls open()", "refused naming the global",
                         nodeid=request.node.nodeid))
    with pytest.raises(UniVTGError) as info:
        load_clip_encoder(TINY_MODEL, weights=path, device="cpu")
    _assert_one_line(str(info.value), _payload_global(marker))
    row.outcome = f"refused: {str(info.value)[:160]}"
    assert not marker.exists()


def test_truncated_and_random_torchscript_files_give_one_line(tmp_path, sandbox, video, report, request):
    from univtg_core.encoders import load_clip_encoder

    plain = _plain_archive(tmp_path)
    row = report.add(Row("crafted files", "torchscript", "TorchScript truncated / random bytes",
                         "a half archive and 4 KiB of random bytes as --clip-weights", "one clear line each",
                         nodeid=request.node.nodeid))
    row.outcome = _refuse_broken_versions(
        plain, tmp_path, lambda p: load_clip_encoder(TINY_MODEL, weights=p, device="cpu"),
        lambda p: sandbox.request("cli", argv=["predict", str(video), "--query", "x", "--clip-model", TINY_MODEL,
                                               "--clip-weights", str(p)]))


# -- guidance score pickles and Caffe2-style weights ----------------------------------------------------------

def _read_guidance(path: Path):
    """The guidance reader where it exists on this branch, else the allow-list unpickler it is built on."""
    try:
        from univtg_core.guidance import read_guidance
    except ImportError:
        return safe_pickle.load(path, what=f"guidance file {path}")
    return read_guidance(path)


def _guidance_records(extra=None) -> list[dict]:
    record = {"qid": "0", "vid": "3001_21_JUMP_STREET", "windows": np.array([[0, 64], [32, 96]], np.int64),
              "score": np.array([0.25, 0.75], np.float32)}
    if extra is not None:
        record["note"] = extra
    return [record]


def _caffe2_blobs(extra=None) -> dict:
    blobs = {"conv1_w": np.ones((2, 3, 1, 1), np.float32), "conv1_b": np.zeros(2, np.float32)}
    if extra is not None:
        blobs["evil"] = extra
    return {"blobs": blobs}


def _glove_vocabulary(extra=None) -> dict:
    from collections import Counter

    vocab = {"w2id": {"dog": 0, "ball": 1}, "id2vec": np.ones((2, 300), np.float32),
             "counter": Counter({"dog": 3, "ball": 1})}
    if extra is not None:
        vocab["counter"] = extra
    return vocab


def _read_slowfast(path: Path):
    from univtg_core.slowfast.weights import read_slowfast_weights

    return read_slowfast_weights(path)


def _read_glove(path: Path):
    from univtg_core.training.mesm_vocab import load_glove_vocabulary

    return load_glove_vocabulary(path)


# kind: (build(extra), read the format (the good file must load), the loader users hit, what the file is).
# SlowFast's loader also wants every R50 blob: its "good" file is checked as a Caffe2 pickle only.
_PICKLE_KINDS = {
    "guidance": (_guidance_records, _read_guidance, _read_guidance, "a guidance score pickle"),
    "caffe2": (_caffe2_blobs, lambda p: safe_pickle.load(p, encoding="latin1"), _read_slowfast,
               "SlowFast Caffe2 weights (.pkl, protocol 2, latin1)"),
    "glove": (_glove_vocabulary, _read_glove, _read_glove, "a MESM GloVe vocabulary (glove.pkl)"),
}


@pytest.mark.parametrize("kind", list(_PICKLE_KINDS))
def test_crafted_data_pickles_are_refused(kind, tmp_path, report, request):
    build, read_format, read, label = _PICKLE_KINDS[kind]
    good = tmp_path / f"{kind}.pkl"
    good.write_bytes(pickle.dumps(build(), protocol=2))
    assert read_format(good) is not None  # the format itself loads
    marker = tmp_path / "marker"
    evil = tmp_path / f"evil-{kind}.pkl"
    evil.write_bytes(pickle.dumps(build(_CreatesFile(marker)), protocol=2))
    row = report.add(Row("crafted files", kind, f"{kind} payload", f"{label} that opens a file",
                         "refused naming the global, marker absent", nodeid=request.node.nodeid))
    pickle.loads(evil.read_bytes())  # the unsafe way: the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UniVTGError) as info:
        read(evil)
    _assert_one_line(str(info.value), _payload_global(marker))
    row.outcome = f"refused: {str(info.value)[:160]}"
    assert not marker.exists()
    lines = []
    for broken in _broken_versions(good, tmp_path):
        with pytest.raises(UniVTGError) as info:
            read(broken)
        _assert_one_line(str(info.value))
        lines.append(str(info.value)[:80])
    report.add(Row("crafted files", kind, f"{kind} truncated / random bytes", f"{label}, cut in half and random",
                   "one clear line each", " | ".join(lines), nodeid=request.node.nodeid))


# -- torch.save weights for the encoders (CLIP --clip-weights, SlowFast .pyth) ------------------------------

def _read_clip_weights(path: Path):
    from univtg_core.encoders import load_clip_encoder

    return load_clip_encoder(TINY_MODEL, weights=path, device="cpu")


_TORCH_WEIGHTS = {
    "clip-weights": ("clip.pt", "state_dict", _read_clip_weights, "open_clip weights (torch.save) as --clip-weights"),
    "slowfast-pyth": ("slowfast.pyth", "model_state", _read_slowfast, "a PySlowFast .pyth checkpoint"),
}


@pytest.mark.parametrize("kind", list(_TORCH_WEIGHTS))
def test_crafted_encoder_weights_are_refused(kind, tmp_path, tiny_model, torchscript_payload, report, request):
    name, key, read, label = _TORCH_WEIGHTS[kind]
    marker = tmp_path / "marker"
    evil = tmp_path / name
    torch.save({key: {"w": torch.zeros(2)}, "note": _CreatesFile(marker)}, evil)
    row = report.add(Row("crafted files", "encoder weights", f"{kind} payload", f"{label} whose pickle opens a file",
                         "refused naming the global, marker absent", nodeid=request.node.nodeid))
    torch.load(evil, weights_only=False)  # the unsafe way: the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UniVTGError) as info:
        read(evil)
    _assert_one_line(str(info.value), _payload_global(marker))
    row.outcome = f"refused: {str(info.value)[:160]}"
    assert not marker.exists()
    if kind == "slowfast-pyth":  # a TorchScript archive renamed .pyth: never handed to torch.jit.load
        archive, ts_marker = torchscript_payload(tmp_path)
        renamed = archive.with_suffix(".pyth")
        archive.rename(renamed)
        with warnings.catch_warnings(record=True) as seen, pytest.raises(UniVTGError) as info:
            warnings.simplefilter("always")
            read(renamed)
        _assert_one_line(str(info.value), "TorchScript archive")
        assert not ts_marker.exists() and not [str(w.message) for w in seen]


# -- checkpoint settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, value", [
    pytest.param(name, value, id=f"{name}={value}")
    for name, value in (("nheads", 0), ("nheads", -4), ("clip_length", -2.0), ("clip_length", 0.0),
                        ("nheads", 3), ("max_v_l", 0), ("dropout", 1.5), ("span_loss_type", "bogus"))])
def test_checkpoint_with_a_nonsense_setting_is_refused_naming_it(setting, value, tmp_path, report, request):
    import argparse

    from univtg_core import load_model
    from univtg_core.errors import CheckpointError
    from univtg_core.models.univtg import UniVTG, UniVTGConfig

    config = UniVTGConfig(video_dim=768, text_dim=768, hidden_dim=64, enc_layers=1, nheads=4,
                          dim_feedforward=64)
    opt = argparse.Namespace(**{"nheads": 4, "ctx_mode": "video_tef", setting: value})
    path = tmp_path / "model_best.ckpt"
    torch.save({"model": UniVTG(config).state_dict(), "opt": opt}, path)
    row = report.add(Row("crafted files", "checkpoint settings", f"checkpoint {setting}={value!r}",
                         f"an otherwise valid checkpoint with opt.{setting}={value!r}",
                         "refused naming the setting", nodeid=request.node.nodeid))
    try:
        load_model(path, device="cpu")
        row.outcome = "accepted"
    except Exception as exc:  # noqa: BLE001 - recorded, then judged below
        row.outcome = f"{type(exc).__name__}: {str(exc)[:140]}"
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu")
    _assert_one_line(str(info.value), setting)
