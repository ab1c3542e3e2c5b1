"""Architectures behind one registry: one module per model, shared building blocks, one contract."""

from ._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput

__all__ = ["FeatureSource", "GroundingModel", "InputSpec", "QueryInput", "WindowOutput"]
