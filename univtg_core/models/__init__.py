"""Architectures behind one registry: one module per model, shared building blocks, one contract.

    from univtg_core.models import list_models, load_model
    list_models()                                   # ['mesm', 'rgnet', 'univtg']
    model = load_model("model_best.ckpt")           # architecture recognised; eval mode

Adding an architecture: write `models/<name>.py` (its nn.Module implementing `GroundingModel`, its config
dataclass, `config_from_checkpoint`, and `register(Architecture(...))`), then import it below.
"""

# Each architecture module registers itself when imported: add new ones to this line.
from . import mesm, rgnet, univtg  # noqa: F401
from ._contract import FeatureSet, FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput, video_sources
from ._loading import load_model, read_checkpoint
from ._registry import (
    Architecture,
    CheckpointContents,
    architectures,
    detect_architecture,
    get_architecture,
    list_models,
    register,
    trainable_models,
)

__all__ = [
    "Architecture",
    "CheckpointContents",
    "FeatureSet",
    "FeatureSource",
    "GroundingModel",
    "InputSpec",
    "QueryInput",
    "WindowOutput",
    "architectures",
    "detect_architecture",
    "get_architecture",
    "list_models",
    "load_model",
    "read_checkpoint",
    "register",
    "trainable_models",
    "video_sources",
]
