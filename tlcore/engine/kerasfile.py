"""The one way a `.keras` file is loaded: checked first, then Keras's safe mode.

Safe mode refuses files that would run arbitrary code (a `Lambda` layer's
pickled function); the zip is checked without TensorFlow first
(`workspace.check_keras_file`), so a truncated file fails with a plain message.
Used for runs trained before light runs (a full `model.keras` in the run's
folder) and wherever a saved model is read back.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from tlcore.errors import NotFoundError, WeightsError
from tlcore.workspace import check_keras_file


def load_keras_file(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` model in Keras safe mode (no arbitrary code from the file).

    Raises:
        NotFoundError: if the file does not exist.
        WeightsError: if it is truncated or corrupt, or Keras refuses or cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"No model file at {path}.")
    check_keras_file(path, str(path))
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, ... here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{path.name} cannot be loaded as a Keras model (safe mode): "
                           f"{first}") from None
