"""Train again in one click: a run on a dataset as it is now, with its latest run's settings.

The Data page's studio offers it beside "Train on this dataset" (which opens the
Train form instead): grow a class, then train again without passing through the
form. The run is queued through the usual launch path (`tlcore.runs.launch`),
which records the dataset's current version and checks what a launch checks (a
dataset too small to train, the per-user limit, weights); the Train page's live
panel follows it.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from tlcore import auth, config
from tlcore.errors import TLCoreError
from tlcore.runs.launch import launch
from tlcore.store import RunFilter, RunStore
from tlcore.ui import train_form
from tlcore.ui.access import denied, permitted
from tlcore.ui.flash import flash
from tlcore.ui.live_panel import LAUNCHED_KEY
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

LAUNCHED = "data_edit_retrained"  # {"dataset", "run", "name"} of the last run queued here


def latest_run(ws: Workspace, dataset: str) -> dict[str, Any] | None:
    """The newest run on `dataset` (any status, anyone's), or None when it has none."""
    rows, _ = RunStore(ws).runs_page(RunFilter(datasets=[dataset]), limit=1)
    return rows[0] if rows else None


def again_config(ws: Workspace, dataset: str) -> tuple[config.RunConfig, dict[str, Any] | None]:
    """The config "Train again" launches on `dataset`, and the run it copies.

    Args:
        ws: The workspace.
        dataset: The dataset to train on.

    Returns:
        `(config, run)`: the newest run's settings and that run's row; without a
        run on the dataset, the Train page's default preset and None.

    Raises:
        ConfigError: The newest run's settings no longer make a valid config.
    """
    run = latest_run(ws, dataset)
    if run is None:
        return config.preset(config.DEFAULT_PRESET, dataset), None
    return config.RunConfig.from_dict({**json.loads(run["config"]), "dataset": dataset}), run


def train_again_button(ws: Workspace, actor: auth.Actor, dataset: str, page: str,
                       where: Any = st) -> None:
    """The "Train again" button: queue the run at once, then say where to follow it.

    Args:
        ws: The workspace.
        actor: Who launches: their role must allow launching.
        dataset: The dataset, trained on as it is now (its current version).
        page: The `flash` prefix whose message says what was queued.
        where: The container the button goes in (a column).
    """
    run = latest_run(ws, dataset)
    source = (f"the settings of its latest run, {plain(run['name'])}" if run else
              f"the Train page's default settings ({config.DEFAULT_PRESET})")
    refused = denied(actor, auth.LAUNCH)
    if where.button("Train again", key="data_edit_train_again", type="primary",
                    icon=":material/replay:", width="stretch", disabled=refused is not None,
                    help=refused or f"Launch a run now on this dataset as it is, with {source}."):
        _launch(ws, actor, dataset, page)


def follow_link(dataset: str) -> None:
    """A link to the Train page's live panel on the run "Train again" last queued here."""
    launched = st.session_state.get(LAUNCHED)
    if launched and launched["dataset"] == dataset:
        st.page_link(train_form.PAGE, query_params={"run": launched["run"]},
                     label=f"Follow {plain(launched['name'])} on the Train page",
                     icon=":material/monitoring:")


def _launch(ws: Workspace, actor: auth.Actor, dataset: str, page: str) -> None:
    if not permitted(actor, auth.LAUNCH):
        return
    try:
        cfg, source = again_config(ws, dataset)
        if cfg.base.source.kind == "file" and not permitted(
                actor, auth.SERVER_IMPORT, what=train_form.SERVER_WEIGHTS):
            return
        run_id = launch(cfg, ws=ws, owner=actor.user)
        name = RunStore(ws).get_run(run_id)["name"]
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.session_state[LAUNCHED_KEY] = run_id  # the Train page's line by Launch follows it
    st.session_state[LAUNCHED] = {"dataset": dataset, "run": run_id, "name": name}
    settings = (f"the settings of {plain(source['name'])}" if source else
                f"the default settings ({config.DEFAULT_PRESET})")
    flash(page, "success", f"Queued **{plain(name)}** on {plain(dataset)} as it is "
                                  f"now, with {settings}.")
    st.rerun()
