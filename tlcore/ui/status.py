"""Run-status badges: one icon and one colour per status, the same on every page."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore.store import CANCELLED, COMPLETED, FAILED, LOST, QUEUED, RUNNING

# Streamlit material icons and badge colours.
STATUS_ICONS = {
    QUEUED: ":material/schedule:", RUNNING: ":material/play_circle:",
    COMPLETED: ":material/check_circle:", FAILED: ":material/error:",
    CANCELLED: ":material/cancel:", LOST: ":material/help:",
}
STATUS_COLORS = {
    QUEUED: "gray", RUNNING: "blue", COMPLETED: "green", FAILED: "red",
    CANCELLED: "orange", LOST: "violet",
}


def status_badge(status: str, where: DeltaGenerator | None = None) -> None:
    """Draw a run's status as a coloured badge with its icon.

    Args:
        status: A run status (`tlcore.store.STATUSES`).
        where: The container to draw in; default the current one.
    """
    (st if where is None else where).badge(status, icon=STATUS_ICONS.get(status),
                                           color=STATUS_COLORS.get(status, "gray"))
