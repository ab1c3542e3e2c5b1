"""The registry: one `Architecture` record per model, looked up by name or recognised from a checkpoint.

A new architecture is a module in `univtg_core/models/` that defines its nn.Module (implementing the
contract in `_contract.py`), builds an `Architecture` and calls `register()`; `models/__init__.py` imports
the module. Nothing else in the code base names architectures.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnknownModelError


@dataclass(frozen=True)
class CheckpointContents:
    """A checkpoint as read from disk, before any model is built.

    options: the training options saved with it (its `opt` Namespace or dict, else `opt.json` beside the
    file, else empty); options_source says which ("checkpoint", "opt.json" or "none").
    """

    path: Path
    checkpoint: dict[str, Any]
    state_dict: OrderedDict[str, torch.Tensor]
    options: dict[str, Any]
    options_source: str

    def option(self, name: str, default: Any, cast: Callable[[Any], Any] = int,
               check: Callable[[Any], bool] | None = None, rule: str = "") -> Any:
        """One training option, cast and checked; a missing or None value gives `default`. A value that
        cannot be cast or fails `check` raises a CheckpointError naming the option, its value and `rule`."""
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            value = cast(raw)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or (check is not None and not check(value)):
            where = "opt.json" if self.options_source == "opt.json" else "its options"
            raise CheckpointError(f"{self.path.name}: option {name}={raw!r} in {where} is invalid"
                                  f"{': ' + rule if rule else ''}")
        return value


def as_bool(value: Any) -> bool:
    """Option flags as argparse stored them (bool), or as JSON/strings wrote them."""
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(value)
    return bool(value)


@dataclass(frozen=True)
class Architecture:
    """Everything the product needs to know about one model, and nothing about its internals.

    model_ids: values of the checkpoint option `model_id` (or `model_name`) that name this architecture.
    signature_keys: state-dict keys every checkpoint of it has (recognition when no option names it).
    config_from_checkpoint: CheckpointContents -> the config dataclass (shapes decide dimensions; every
        option validated, CheckpointError naming the bad one).
    module: the nn.Module class, built as module(config); it implements `GroundingModel`.
    safe_globals: what its checkpoints pickle besides tensors and containers (plain data classes only).
    filter_state_dict: keys dropped before the strict load (e.g. a text tower the checkpoint omits).
    features: the feature sources it reads, in words; a checkpoint's exact needs (names and widths) are
        its config's `input_spec`.
    training: "module:attribute" of its `TrainingRecipe`, imported only by the trainer.
    checkpoints: which official checkpoints load (for README and messages).
    """

    name: str
    summary: str
    module: type
    config_from_checkpoint: Callable[[CheckpointContents], Any]
    model_ids: tuple[str, ...] = ()
    signature_keys: tuple[str, ...] = ()
    safe_globals: tuple[Any, ...] = ()
    filter_state_dict: Callable[[OrderedDict[str, torch.Tensor]], OrderedDict[str, torch.Tensor]] | None = None
    recognise: Callable[[CheckpointContents], bool] | None = field(default=None, repr=False)
    features: str = ""
    training: str | None = None
    checkpoints: str = ""

    def names_itself_in(self, contents: CheckpointContents) -> bool:
        model_id = contents.options.get("model_id", contents.options.get("model_name"))
        return isinstance(model_id, str) and model_id.lower() in self.model_ids

    def matches(self, contents: CheckpointContents) -> bool:
        """Whether the checkpoint's weights are of this architecture (when no option names one)."""
        if self.recognise is not None:
            return bool(self.recognise(contents))
        return bool(self.signature_keys) and all(k in contents.state_dict for k in self.signature_keys)

    def build(self, config: Any) -> torch.nn.Module:
        return self.module(config)

    def training_recipe(self) -> Any:
        """The architecture's TrainingRecipe (imports the training package)."""
        if self.training is None:
            raise UnknownModelError(f"architecture {self.name!r} cannot be trained here (it has no training "
                                    f"recipe); trainable: {', '.join(trainable_models()) or 'none'}")
        import importlib

        module, _, attribute = self.training.partition(":")
        return getattr(importlib.import_module(module), attribute)


_REGISTRY: dict[str, Architecture] = {}


def register(architecture: Architecture) -> Architecture:
    """Add an architecture (its name must be new); returns it, so a module can keep it as a constant."""
    key = architecture.name.lower()
    if key in _REGISTRY and _REGISTRY[key] is not architecture:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    _REGISTRY[key] = architecture
    return architecture


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def trainable_models() -> list[str]:
    return sorted(name for name, arch in _REGISTRY.items() if arch.training is not None)


def architectures() -> list[Architecture]:
    return [_REGISTRY[name] for name in list_models()]


def get_architecture(name: str) -> Architecture:
    """The record of `name` (case-insensitive); UnknownModelError lists the known ones."""
    arch = _REGISTRY.get(str(name).lower())
    if arch is None:
        raise UnknownModelError(f"unknown model {name!r}; known architectures: {describe_known()}")
    return arch


def describe_known() -> str:
    return "; ".join(f"{a.name} ({a.summary})" for a in architectures()) or "none registered"


def detect_architecture(contents: CheckpointContents) -> Architecture:
    """The architecture a checkpoint is of: the one its options name, else the one its weights match."""
    for arch in architectures():
        if arch.names_itself_in(contents):
            return arch
    matching = [arch for arch in architectures() if arch.matches(contents)]
    if len(matching) == 1:
        return matching[0]
    model_id = contents.options.get("model_id", contents.options.get("model_name"))
    said = f" (its options say model_id={model_id!r})" if model_id is not None else ""
    if len(matching) > 1:
        raise CheckpointError(f"{contents.path.name} fits several architectures ({', '.join(a.name for a in matching)})"
                              f"{said}; pass the one it is, e.g. load_model(path, model={matching[0].name!r})")
    raise CheckpointError(f"{contents.path.name} is not a checkpoint of a known architecture{said}; known "
                          f"architectures: {describe_known()}")
