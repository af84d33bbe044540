"""Named starting points for a run config: the Keras recipe, a fast head, fine-tuning, scratch."""

from __future__ import annotations

import copy
from typing import Any

from tlcore.config.schema import RunConfig
from tlcore.errors import ConfigError

# How a network with every layer trainable and random init trains (the from-scratch
# baseline). Adam at 1e-4: VGG16 has no BatchNorm, and from random init the 1e-3 that
# suits a head on frozen features tends to stall it (dead ReLUs) or make it diverge;
# 1e-4 is the usual rate for a plain VGG trained from scratch. 30 epochs, three times
# the head-only recipe's 10, because every layer starts from noise; early stopping
# still ends the run once the val loss stops improving. Small images (32-64 px) train
# fine this way; each epoch runs the whole network, so 150 px costs about 5x 64 px.
SCRATCH_TRAIN: dict[str, Any] = {"optimizer": "adam", "learning_rate": 1e-4, "epochs": 30}

PRESETS: dict[str, dict[str, Any]] = {
    "Keras recipe (150 px)": {},
    "Fast feature extraction (GAP head)": {
        "image_size": 64,
        "head": {"pooling": "avg", "dense": [128], "dropout": 0.3},
        "train": {"epochs": 15, "batch_size": 64},
    },
    "Fine-tune block 5": {
        "train": {"epochs": 5},
        "fine_tune": {"blocks": 1, "epochs": 5, "learning_rate": 1e-5},
    },
    # The baseline of the Keras recipe: same data, size and head, every layer trained
    # from random init (`tlcore.results.transfer.baseline_config` of the recipe).
    "From scratch (baseline)": {
        "base": {"weights": "none", "trainable": True},
        "train": dict(SCRATCH_TRAIN),
    },
}
DEFAULT_PRESET = "Keras recipe (150 px)"


def preset(name: str, dataset: str) -> RunConfig:
    """The named preset as a config for `dataset`.

    Raises:
        ConfigError: if `name` is not a preset.
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset; choose one of {', '.join(PRESETS)}. Received: {name!r}")
    data: dict[str, Any] = copy.deepcopy(PRESETS[name])
    data["dataset"] = dataset
    return RunConfig.from_dict(data)
