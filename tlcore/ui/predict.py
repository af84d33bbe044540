"""Classify pictures with a finished run from a page, and show what the model saw.

The Evaluate page's Predict tab and the Train page's "Try it" panel share this:
the pictures are staged in the workspace (`tlcore.data.staging`) and classified
by `python -m tlcore predict RUN --json` (`tlcore.ui.cli.run_cli`), as the UI
process never imports TensorFlow.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from tlcore.charts import evaluation as evalcharts
from tlcore.data.staging import make_staging
from tlcore.ui.cli import run_cli
from tlcore.ui.text import percent, plain
from tlcore.workspace import Workspace

TOP_K = 3
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]


def classify(ws: Workspace, run_id: str, images: Sequence[tuple[str, bytes]],
             top_k: int = TOP_K, gradcam: bool = True) -> list[dict[str, Any]] | None:
    """Classify encoded images with a completed run, under a spinner.

    Args:
        ws: The workspace.
        run_id: A completed run.
        images: `(file name, encoded bytes)` per image (an upload, a camera picture).
        top_k: Classes returned per image.
        gradcam: Add each image's Grad-CAM overlay for its predicted class.

    Returns:
        One dict per image, in order: `name`, `image` (the bytes), `top` (`class`,
        `index`, `probability`, best first) and, with `gradcam`,
        `overlay_png_base64`; or None after the page showed why it failed.
    """
    folder = make_staging(ws, "predict-")
    try:
        paths = []
        for i, (name, data) in enumerate(images):
            # Staged under a fixed name: only the suffix of the user's name is kept.
            path = folder / f"{i:04d}{Path(name).suffix.lower()}"
            path.write_bytes(data)
            paths.append(str(path))
        args = ["predict", run_id, *paths, "--json", "--top-k", str(top_k)]
        out = run_cli(ws, args + (["--gradcam"] if gradcam else []),
                      f"Classifying {len(paths)} image{'s' if len(paths) != 1 else ''}…")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if out is None:
        return None
    return [{"name": name, "image": data, **result}
            for (name, data), result in zip(images, json.loads(out), strict=True)]


def show_prediction(item: dict[str, Any], key: str,
                    widths: Sequence[int] = (1, 1, 2)) -> None:
    """One classified image: the picture, its Grad-CAM overlay and the top-k bar chart.

    Args:
        item: One of `classify`'s results.
        key: The chart's widget key (unique on the page).
        widths: Relative widths of the picture, overlay and chart columns.
    """
    c1, c2, c3 = st.columns(list(widths))
    c1.image(item["image"], caption=plain(item["name"]), width="stretch")
    if item.get("overlay_png_base64"):
        c2.image(base64.b64decode(item["overlay_png_base64"]), caption="Grad-CAM",
                 width="stretch")
    best = item["top"][0]
    c3.markdown(f"**{plain(best['class'])}** ({percent(best['probability'])})")
    c3.plotly_chart(evalcharts.topk_figure(item["top"]), key=key, width="stretch", theme=None)
