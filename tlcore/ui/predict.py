"""Use a finished run's model from a page: classify pictures, show what it saw, export it.

The Evaluate page's Predict and Export tabs and the Train page's "Try it" panel
share this.
The UI process never imports TensorFlow: the pictures go to the dashboard's
inference service (`tlcore.runs.inference`), which has Keras imported and the
model loaded. Where the service is turned off or does not start, they are staged
in the workspace (`tlcore.data.staging`) and classified by
`python -m tlcore predict RUN --json` (`tlcore.ui.cli.run_cli`).
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
from tlcore.errors import TLCoreError
from tlcore.runs import inference
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
    what = f"Classifying {len(images)} image{'s' if len(images) != 1 else ''}…"
    try:
        with st.spinner(what, show_time=True):
            results = inference.request(ws, "predict", run_id=run_id,
                                        images=[data for _, data in images], k=top_k,
                                        gradcam=gradcam)
    except inference.ServiceUnavailable:
        return _classify_in_cli(ws, run_id, images, top_k, gradcam, what)
    except TLCoreError as exc:
        st.error(plain(exc))
        return None
    out = []
    for (name, data), result in zip(images, results, strict=True):
        overlay = result.pop("overlay_png", None)
        if overlay is not None:
            result["overlay_png_base64"] = base64.b64encode(overlay).decode()
        out.append({"name": name, "image": data, **result})
    return out


def _classify_in_cli(ws: Workspace, run_id: str, images: Sequence[tuple[str, bytes]],
                     top_k: int, gradcam: bool, what: str) -> list[dict[str, Any]] | None:
    """`classify` through `python -m tlcore predict` (a new process)."""
    folder = make_staging(ws, "predict-")
    try:
        paths = []
        for i, (name, data) in enumerate(images):
            # Staged under a fixed name: only the suffix of the user's name is kept.
            path = folder / f"{i:04d}{Path(name).suffix.lower()}"
            path.write_bytes(data)
            paths.append(str(path))
        args = ["predict", run_id, *paths, "--json", "--top-k", str(top_k)]
        out = run_cli(ws, args + (["--gradcam"] if gradcam else []), what)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if out is None:
        return None
    return [{"name": name, "image": data, **result}
            for (name, data), result in zip(images, json.loads(out), strict=True)]


def export(ws: Workspace, run_id: str, fmt: str, path: Path, what: str) -> bool:
    """Write the export zip of a completed run at `path`, under a spinner; whether it worked.

    Args:
        ws: The workspace.
        run_id: A completed run.
        fmt: One of `tlcore.results.export.FORMATS` (as the CLI's `--format`).
        path: The zip to write.
        what: The spinner's text (Markdown: pass names through `text.plain`).
    """
    try:
        with st.spinner(what, show_time=True):
            inference.request(ws, "export", run_id=run_id, fmt=fmt, out=str(path))
    except inference.ServiceUnavailable:
        return run_cli(ws, ["export", run_id, "--format", fmt, "--out", str(path)],
                       what) is not None
    except TLCoreError as exc:
        st.error(plain(exc))
        return False
    return True


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
