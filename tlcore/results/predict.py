"""Predict new images with a finished run's model (TensorFlow; worker or CLI only).

Images are decoded exactly as the dataset's were (`tlcore.cache.images.decode`:
Pillow, RGB, bilinear resize to the run's image size), so a stored image
gets the same prediction here as in the evaluation.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tlcore.cache.images import decode
from tlcore.engine.gradcam import gradcam, overlay, png_bytes
from tlcore.engine.openrun import open_run
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace

ImageSource = str | os.PathLike | bytes


def load_image(source: ImageSource, size: int) -> np.ndarray:
    """Decode a file path or encoded image bytes to RGB uint8 `(size, size, 3)`.

    Raises:
        DatasetError: if the file is missing or is not a readable image.
    """
    label = "uploaded image" if isinstance(source, bytes) else str(source)
    try:
        return decode(io.BytesIO(source) if isinstance(source, bytes) else source, size)
    except FileNotFoundError:
        raise DatasetError(f"No image file at {label}.") from None
    # UnidentifiedImageError is an OSError; truncated data raises OSError too.
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"Cannot read {label} as an image: {exc}") from None


def predict_images(run_id: str, images: list[ImageSource], ws: Workspace | None = None,
                   k: int = 3, with_gradcam: bool = False) -> list[dict[str, Any]]:
    """Top-k classes for each image, optionally with a Grad-CAM overlay.

    Args:
        run_id: A completed run.
        images: File paths or encoded image bytes (PNG, JPEG, ...).
        ws: The workspace (default: from $TLCORE_HOME).
        k: How many classes to return per image (capped at the class count).
        with_gradcam: Add `overlay_png`, PNG bytes of the Grad-CAM overlay for
            the predicted class on the resized image.

    Returns:
        One dict per image, in order: `source` (the path, or "image <i>" for
        bytes), `top` (list of `{"class", "index", "probability"}`, best
        first) and, with `with_gradcam`, `overlay_png`.

    Raises:
        RunStateError: if the run is not completed.
        DatasetError: if an image cannot be read.
    """
    run = open_run(run_id, ws)
    classes = run.classes
    x = np.stack([load_image(src, run.config.image_size) for src in images]) if images else None
    if x is None:
        return []
    from tlcore.engine.feed import predict_probs  # Keras, only for this call
    from tlcore.engine.runmodel import run_model

    model = run_model(run)
    probs = predict_probs(model, x)
    k = max(1, min(int(k), len(classes)))
    out = []
    for i, (src, p) in enumerate(zip(images, probs, strict=True)):
        top = np.argsort(-p, kind="stable")[:k]
        out.append({
            "source": f"image {i}" if isinstance(src, bytes) else str(Path(src)),
            "top": [{"class": classes[j], "index": int(j), "probability": float(p[j])}
                    for j in top],
        })
    if with_gradcam:
        for item, img, heat in zip(out, x, gradcam(model, x), strict=True):
            item["overlay_png"] = png_bytes(overlay(img, heat))
    return out
