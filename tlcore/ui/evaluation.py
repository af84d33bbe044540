"""Stored evaluations (`runs/<id>/eval/<dataset>.json`), read once per file version,
and the metric cards and image grid the evaluation views share."""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore.results import evaluate
from tlcore.ui.text import percent
from tlcore.workspace import Workspace

GALLERY_COLUMNS = 4


@st.cache_data(show_spinner=False, max_entries=32)
def _load(root: str, run_id: str, dataset: str, mtime: float) -> dict[str, Any] | None:
    # Keyed by the file's mtime: a re-evaluation is read afresh, never served stale.
    return evaluate.load_evaluation(run_id, dataset, ws=Workspace.from_env(root))


def stored_evaluation(ws: Workspace, run_id: str, dataset: str) -> dict[str, Any] | None:
    """A run's stored evaluation on a dataset, read without TensorFlow.

    Args:
        ws: The workspace.
        run_id: The run.
        dataset: The dataset it was evaluated on.

    Returns:
        The evaluation as `tlcore.results.evaluate` stores it, or None when there is none.

    Raises:
        OSError, ValueError: when the stored file cannot be read or parsed.
    """
    path = ws.run(run_id).evaluation(dataset)
    if not path.is_file():
        return None
    return _load(str(ws.root), run_id, dataset, path.stat().st_mtime)


def image_grid(items: list[tuple[Any, str]]) -> None:
    """Images (paths or arrays) with captions, in rows of `GALLERY_COLUMNS`."""
    for start in range(0, len(items), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, (image, caption) in zip(cols, items[start:start + GALLERY_COLUMNS],
                                         strict=False):
            col.image(image, caption=caption, width="stretch")


def metric_cards(m: dict) -> None:
    """Accuracy, top-k accuracy, macro F1, macro ROC AUC and image count of an evaluation."""
    cols = st.columns(5)
    cols[0].metric("Accuracy", percent(m["accuracy"]))
    cols[1].metric(f"Top-{m['top_k']} accuracy", percent(m["top_k_accuracy"]))
    cols[2].metric("Macro F1", percent(m["macro"]["f1"]))
    cols[3].metric("Macro ROC AUC", percent(m["macro"]["auc"]))
    cols[4].metric("Images", m["n"])
