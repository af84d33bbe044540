"""Run-status badges: one icon and one colour per status, the same on every page.

A sweep trial that the pruner stopped is stored as cancelled; it shows as
"pruned" (`shown_status`), with nothing to resume.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore.store import CANCELLED, COMPLETED, FAILED, LOST, QUEUED, RUNNING

PRUNED = "pruned"
# Streamlit material icons and badge colours.
STATUS_ICONS = {
    QUEUED: ":material/schedule:", RUNNING: ":material/play_circle:",
    COMPLETED: ":material/check_circle:", FAILED: ":material/error:",
    CANCELLED: ":material/cancel:", LOST: ":material/help:", PRUNED: ":material/content_cut:",
}
STATUS_COLORS = {
    QUEUED: "gray", RUNNING: "blue", COMPLETED: "green", FAILED: "red",
    CANCELLED: "orange", LOST: "violet", PRUNED: "gray",
}


def shown_status(run: dict) -> str:
    """The status to show for `run`: "pruned" for a sweep trial the pruner stopped early."""
    if run["status"] == CANCELLED and (run.get("extra") or {}).get("pruned"):
        return PRUNED
    return run["status"]


def status_badge(status: str, where: DeltaGenerator | None = None) -> None:
    """Draw a run's status as a coloured badge with its icon.

    Args:
        status: A run status (`tlcore.store.STATUSES`).
        where: The container to draw in; default the current one.
    """
    (st if where is None else where).badge(status, icon=STATUS_ICONS.get(status),
                                           color=STATUS_COLORS.get(status, "gray"))
