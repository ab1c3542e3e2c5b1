"""SlowFast R50 8x8 features exactly as HERO_Video_Feature_Extractor makes them (UniVTG's, MESM's inputs).

- :mod:`.network`: the network, with PySlowFast's parameter names.
- :mod:`.weights`: PySlowFast's released Caffe2 checkpoint (read safely), safetensors, seeded test weights.
- :mod:`.pipeline`: probe, 30 fps frames, clip grid, frame sampling, normalisation.
- :mod:`.encoder`: ``load_slowfast_encoder`` and the encoder that turns a video file into features.
"""

from .encoder import SlowFastEncoder, load_slowfast_encoder
from .network import FEATURE_DIM, SlowFastR50
from .weights import (
    OFFICIAL_WEIGHTS_URL,
    convert_caffe2_to_safetensors,
    read_slowfast_weights,
    seeded_slowfast_state_dict,
)

__all__ = [
    "FEATURE_DIM",
    "OFFICIAL_WEIGHTS_URL",
    "SlowFastEncoder",
    "SlowFastR50",
    "convert_caffe2_to_safetensors",
    "load_slowfast_encoder",
    "read_slowfast_weights",
    "seeded_slowfast_state_dict",
]
