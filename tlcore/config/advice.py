"""Advice before a run starts: settings the config allows but that tend to go wrong.

The config accepts every value within its bounds. A few of those values are
almost always a mistake: a learning rate that makes training diverge, one
image per step, or an image size far from the dataset's own. `launch_warnings`
names them in plain sentences; the Train page shows them above *Launch run*
and `python -m tlcore train` prints them as `warning:` lines on stderr. They
never block a launch. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tlcore.config.schema import RunConfig

# Above these rates training usually diverges (loss nan or exploding). Adam and RMSprop
# scale each step to about the learning rate, so their limit is lower than plain SGD's.
MAX_LEARNING_RATE = {"adam": 0.1, "rmsprop": 0.1, "sgd": 1.0}
TYPICAL_LEARNING_RATE = {
    "adam": "1e-3 suits a frozen base, 1e-4 training from scratch",
    "rmsprop": "1e-3 suits a frozen base, 1e-4 training from scratch",
    "sgd": "0.01 is a usual start",
}
# An image size more than this factor above or below the dataset's median image side.
SIZE_FACTOR = 4.0


def median_side(sizes: Mapping[str, Any] | None) -> float | None:
    """The typical side of a dataset's images, in pixels, from its health report.

    Args:
        sizes: `manifest["health"]["sizes"]` (`{"width": {"median": ...}, "height":
            {...}}`), or None.

    Returns:
        The mean of the median width and the median height, or None when unknown.
    """
    if not sizes:
        return None
    medians = [(sizes.get(axis) or {}).get("median") for axis in ("width", "height")]
    if any(m is None for m in medians):
        return None
    return (medians[0] + medians[1]) / 2


def _rate_warning(key: str, rate: float, optimizer: str) -> str | None:
    limit = MAX_LEARNING_RATE[optimizer]
    if rate <= limit:
        return None
    return (f"{key} {rate:g} is very high for {optimizer} (above {limit:g}): the loss is "
            f"likely to turn nan or explode, and the run then stops as diverged; "
            f"{TYPICAL_LEARNING_RATE[optimizer]}.")


def launch_warnings(config: RunConfig, sizes: Mapping[str, Any] | None = None) -> list[str]:
    """Allowed but suspicious settings of `config`, one plain sentence each.

    Args:
        config: The run config about to be launched.
        sizes: The dataset's image sizes (`manifest["health"]["sizes"]`); without
            them the image size is not checked.

    Returns:
        Sentences in config order; empty when nothing looks wrong.
    """
    out = []
    optimizer = config.train.optimizer
    rates = [("train.learning_rate", config.train.learning_rate)]
    if config.fine_tune.enabled:
        rates.append(("fine_tune.learning_rate", config.fine_tune.learning_rate))
    side = median_side(sizes)
    if side:
        size = config.image_size
        if size > SIZE_FACTOR * side:
            out.append(f"image_size {size} is over {SIZE_FACTOR:g} times the dataset's median "
                       f"image side ({side:g} px): upscaling adds no detail and makes every "
                       f"epoch slower; try a size near {max(32, round(side))} px.")
        elif size < side / SIZE_FACTOR:
            out.append(f"image_size {size} is under 1/{SIZE_FACTOR:g} of the dataset's median "
                       f"image side ({side:g} px): shrinking that far loses most of the detail; "
                       f"try a size nearer {min(512, round(side))} px.")
    for key, rate in rates:
        message = _rate_warning(key, rate, optimizer)
        if message:
            out.append(message)
    if config.train.batch_size == 1:
        out.append("train.batch_size 1: every step sees one image, so training is slow and "
                   "its loss noisy (and BatchNorm in the head needs more); use 8 or more.")
    return out
