"""The one reader of weight files: every loader (checkpoints, CLIP weights) reads tensors through here.

Nothing it reads can run code: `.safetensors` files hold only tensors; anything else goes through
`torch.load(weights_only=True)` with only the safe globals the caller names (plain data classes such as
`argparse.Namespace`, never a callable). A pickle that refers to anything else is refused with the name of
what it refers to, on every torch version (older ones say "Unsupported global: GLOBAL x", newer ones
"Trying to load unsupported GLOBAL x"; when neither wording matches, the pickle's globals are listed
without running it).
"""

from __future__ import annotations

import re
import zipfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, UniVTGError

# Nesting under which checkpoints keep their state dict, tried in this order.
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL\s+([A-Za-z_][\w.]*)")


def global_name(obj: Any) -> str:
    """`module.qualname` of a class or function, as pickles name it."""
    return f"{obj.__module__}.{obj.__qualname__}"


def is_torchscript_archive(path: str | Path) -> bool:
    """A `torch.jit.save` archive (it holds `constants.pkl`): `torch.load` would hand it to `torch.jit.load`,
    which runs the archive's code, so weights readers recognise it first."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def refused_globals(path: str | Path, exc: BaseException, allowed: Iterable[Any] = ()) -> list[str]:
    """The globals a weights-only load refused: from torch's message, else from the pickle itself."""
    found = _GLOBAL_IN_MESSAGE.findall(str(exc))
    if found:
        return list(dict.fromkeys(found))
    lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if lister is None:
        return []
    try:
        names = lister(str(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint: there is nothing more to name
        return []
    safe = {global_name(g) for g in allowed}
    return [n for n in names if n not in safe]


def read_weights(path: str | Path, safe_globals: Iterable[Any] = (), *, error: type[UniVTGError] = CheckpointError,
                 what: str = "checkpoint") -> dict[str, Any]:
    """The top-level dictionary of a weights file (a `.safetensors` file becomes {"state_dict": tensors}).

    `error` is the exception the caller's users see (CheckpointError, EncoderWeightsError); `what` names
    the file in its messages.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}" if not path.exists() else f"{what} {path} is not a file")
    allowed = list(safe_globals)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return {"state_dict": load_file(str(path), device="cpu")}
        except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
            raise error(f"cannot read {what} {path} as safetensors: {_first_line(exc)}") from exc
    if is_torchscript_archive(path):
        raise error(f"{path} is a TorchScript archive, not a {what}: its code is never run here. Pass a "
                    f"{what} saved with torch.save or as .safetensors (TorchScript CLIP weights go to --clip-weights)")
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one message for the user
        refused = refused_globals(path, exc, allowed)
        if refused:
            raise error(
                f"refused to read {what} {path}: it refers to {', '.join(refused)}, which could run code when "
                f"loaded (allowed: tensors, plain containers{''.join(', ' + global_name(g) for g in allowed)}). "
                f"If you trust the file, re-save its state_dict alone") from exc
        raise error(f"cannot read {what} {path}: not a PyTorch (torch.save) or .safetensors file "
                    f"({type(exc).__name__}: {_first_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise error(f"{path} does not hold a {what} dictionary (got {type(obj).__name__})")
    return obj


def state_dict_of(obj: dict[str, Any], *, error: type[UniVTGError] = CheckpointError,
                  what: str = "checkpoint") -> OrderedDict[str, torch.Tensor]:
    """The tensors of a checkpoint dictionary: `model`/`state_dict` nesting unwrapped, `module.` stripped.

    Entries that are not tensors (OpenAI's `input_resolution`, ...) are left out.
    """
    state: Any = obj
    for key in STATE_DICT_KEYS:
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = OrderedDict((k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise error(f"the {what} holds no weights (expected a state dict of tensors, e.g. under 'model')")
    return OrderedDict((k.removeprefix("module."), v) for k, v in tensors.items())


def read_state_dict(path: str | Path, safe_globals: Iterable[Any] = (), *, error: type[UniVTGError] = CheckpointError,
                    what: str = "weights") -> OrderedDict[str, torch.Tensor]:
    """`read_weights` then `state_dict_of`: the tensors of a file, whatever its nesting."""
    return state_dict_of(read_weights(path, safe_globals, error=error, what=what), error=error, what=what)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no details"
