"""A toast when a run of yours ends, whichever page is open.

The sidebar's queue panel polls the active runs every few seconds; `announce`
remembers in the session which of them it saw, and once one leaves the queue
(completed, failed, cancelled or lost) says so once. Only the signed-in user's
own runs are announced; without a login, every run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import streamlit as st

from tlcore.auth import Actor
from tlcore.errors import TLCoreError
from tlcore.store import ACTIVE_STATUSES, COMPLETED, RunStore
from tlcore.ui.status import STATUS_ICONS, shown_status
from tlcore.ui.text import percent, plain

SEEN_KEY = "notices_seen"  # ids of this user's runs last seen queued or running


def mine(run: dict, actor: Actor | None) -> bool:
    """Whether `run` is `actor`'s to be told about: their own, or any run without a login."""
    return actor is None or actor.user is None or run.get("owner") == actor.user


def settle(seen: Collection[str], active: Sequence[dict],
           actor: Actor | None) -> tuple[set[str], list[str]]:
    """Which watched runs left the queue since the last look, and what to watch now.

    Args:
        seen: Ids of the runs watched after the last look.
        active: The runs queued or running now.
        actor: Who is looking (see `mine`).

    Returns:
        The ids to watch from now on (`actor`'s active runs), and the ids in
        `seen` no longer active, in `seen`'s order.
    """
    now = {run["id"] for run in active if mine(run, actor)}
    return now, [run_id for run_id in seen if run_id not in now]


def notice_text(run: dict) -> str:
    """One line on how a run ended: "Run **cats** completed — 87.3% val accuracy"."""
    status = shown_status(run)
    text = f"Run **{plain(run['name'])}** {status}"
    reason = (run.get("error") or "").strip()
    if run["status"] == COMPLETED and run.get("best_val_accuracy") is not None:
        text += f" — {percent(run['best_val_accuracy'])} val accuracy"
    elif reason and run["status"] != COMPLETED:
        text += f": {plain(reason.splitlines()[0])}"
    return text


def announce(store: RunStore, active: Sequence[dict], actor: Actor | None) -> None:
    """A toast for each of `actor`'s runs that left the queue since the last poll.

    Args:
        store: The run store (the ended runs are read from it).
        active: The runs queued or running now.
        actor: Who uses this session.
    """
    watched, ended = settle(st.session_state.get(SEEN_KEY, ()), active, actor)
    st.session_state[SEEN_KEY] = watched
    for run_id in ended:
        try:
            run = store.get_run(run_id)
        except TLCoreError:  # deleted meanwhile: nothing to tell
            continue
        if run["status"] not in ACTIVE_STATUSES:
            st.toast(notice_text(run), icon=STATUS_ICONS.get(shown_status(run)))
