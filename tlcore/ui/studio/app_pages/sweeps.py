"""Sweeps: define a search space with widgets, start an Optuna sweep, watch its trials.

The space is built from the config declaration (`config.field_specs`): choice
and bool fields pick values, number fields a low/high range (log for learning
rates), the dense widths a list of layouts. A sweep's trials are ordinary runs;
the page shows the leaderboard, the best val accuracy so far, the parameters
against the result (parallel coordinates, log axes for log-sampled keys) and
Optuna's parameter importance, and opens the best completed trial on the Train
page: its settings in the form, its results below. No TensorFlow here:
sweep workers are `python -m tlcore.workers.sweep` processes. Starting a sweep needs
the member role; cancelling and resuming one are its owner's or an admin's.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from tlcore import auth, config
from tlcore import data as datasets_api
from tlcore.charts import parcoords
from tlcore.charts import runs as charts
from tlcore.charts import sweeps as sweepcharts
from tlcore.errors import TLCoreError
from tlcore.runs import sweeps
from tlcore.store import COMPLETED, RunStore
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.text import percent, plain
from tlcore.ui.train_form import open_in_train
from tlcore.workspace import Workspace

REFRESH_S = 2.0
KEY = "sweep_"  # widget keys
# Keys a sweep varies most often, offered first; any declared key can be added.
SUGGESTED = ["head.pooling", "head.dense", "head.dropout", "train.learning_rate"]
NOT_SWEPT = {"dataset", "base.name", "train.backend", "train.mixed_precision",
             "train.distribute"}
# Fewer completed trials than this: parameter importance is read as a hint only.
IMPORTANCE_RELIABLE_TRIALS = 10
STARTED_KEY = KEY + "started"  # (sweep id, message) of the sweep this session just started
SAMPLER_LABELS = {"tpe": "TPE (learns from earlier trials)", "random": "Random",
                  "grid": "Grid (every combination)"}


def sweepable() -> dict[str, config.FieldSpec]:
    """The config keys a sweep may vary, as declared."""
    return {k: s for k, s in config.field_specs().items()
            if k not in NOT_SWEPT and s.type in ("int", "float", "bool", "choice", "list")}


def dimension_widget(spec: config.FieldSpec) -> dict[str, Any]:
    """Widgets for one swept key; returns its space entry (may be invalid: checked later)."""
    key = KEY + spec.key
    if spec.type in ("choice", "bool"):
        options = list(spec.choices) if spec.type == "choice" else [True, False]
        picked = st.multiselect(spec.key, options, default=options[:2], key=key,
                                help=spec.help)
        return {"choices": picked}
    if spec.type == "list":
        text = st.text_input(spec.key, "64; 256; 512, 128", key=key,
                             help="Layouts separated by ';', widths by ','. " + spec.help)
        layouts = [[int(w) for w in part.replace(" ", "").split(",") if w]
                   for part in text.split(";") if part.strip()]
        return {"choices": layouts}
    low, high = default_range(spec)
    c1, c2, c3 = st.columns([2, 2, 1])
    number_format = None if spec.type == "int" else "%g"
    low = c1.number_input(f"{spec.key} from", value=low, key=key + "_low", help=spec.help,
                          format=number_format)
    high = c2.number_input(f"{spec.key} to", value=high, key=key + "_high",
                           format=number_format)
    log = c3.checkbox("log", value=spec.key.endswith("learning_rate"), key=key + "_log")
    return {"low": low, "high": high, "log": log} if log else {"low": low, "high": high}


def default_range(spec: config.FieldSpec) -> tuple[Any, Any]:
    """A first range around a number field's default, inside its declared bounds."""
    default = spec.default or 0
    if spec.type == "int":
        low = max(spec.lower if spec.lower is not None else 0, default // 2)
        return low, max(low + 1, default * 2)
    low = default / 10 if default > 0 and spec.lower_open else (spec.lower or 0.0)
    high = default * 10 if spec.lower_open else (default * 2 or 0.01 * (spec.upper or 1.0))
    if spec.upper is not None:
        high = min(high, spec.upper * (0.95 if spec.upper_open else 1.0))
    return float(low), float(high)


def base_choices(ws: Workspace, dataset: str) -> dict[str, Any]:
    """Label -> a function giving the base config: presets, then completed runs, newest first."""
    choices: dict[str, Any] = {f"Preset: {p}": (lambda p=p: config.preset(p, dataset))
                               for p in config.PRESETS}
    for run in reversed(RunStore(ws).list_runs(dataset=dataset, statuses=(COMPLETED,))):
        choices[f"Run: {run['name']}"] = (lambda r=run: config.RunConfig.from_dict(r["config"]))
    return choices


def new_sweep(ws: Workspace, actor: auth.Actor) -> None:
    """The form that defines and starts a sweep (owned by `actor`)."""
    names = [d["name"] for d in datasets_api.list_datasets(ws)]
    if not names:
        st.info("Import a dataset on the Data page first.")
        return
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox("Dataset", names, key=KEY + "dataset")
    starts = base_choices(ws, dataset)
    start = c2.selectbox("Start from", list(starts), key=KEY + "base",
                         help="The settings every trial shares, before the swept keys: a "
                              "preset, or a completed run on this dataset.")
    name = c3.text_input("Sweep name", key=KEY + "name", placeholder="optional")
    specs = sweepable()
    keys = st.multiselect("Keys to sweep", list(specs), default=SUGGESTED, key=KEY + "keys",
                          help="Each trial is a run with these keys drawn from the space.")
    space = {}
    for key in keys:
        space[key] = dimension_widget(specs[key])
    c1, c2, c3 = st.columns(3)
    trials = int(c1.number_input("Trials", 1, 1000, 20, key=KEY + "trials"))
    sampler = c2.selectbox("Sampler", list(SAMPLER_LABELS), format_func=SAMPLER_LABELS.get,
                           key=KEY + "sampler")
    workers = int(c3.number_input("Workers in parallel", 1, 16, 1, key=KEY + "workers",
                                  help="Each counts against TLCORE_MAX_WORKERS."))
    st.caption("Space as JSON (the CLI's --space file):")
    st.code(json.dumps(space), language="json", wrap_lines=True)
    refused = denied(actor, auth.LAUNCH)
    start_clicked = st.button("Start sweep", type="primary", key=KEY + "start",
                              disabled=refused is not None, help=refused)
    if start_clicked and permitted(actor, auth.LAUNCH):
        try:
            base = starts[start]()
            sweep_id = sweeps.start(ws, base, space, trials, sampler=sampler,
                                    workers=workers, name=name.strip() or None,
                                    owner=actor.user)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        st.query_params["sweep"] = sweep_id
        st.session_state[STARTED_KEY] = (sweep_id, f"Sweep {sweep_id} started with {workers} "
                                                   "worker(s).")
        st.rerun()


@st.fragment(run_every=REFRESH_S)
def sweep_view(ws: Workspace, sweep_id: str, actor: auth.Actor) -> None:
    """One sweep: state, leaderboard, charts; refreshed while it runs.

    Cancel and Resume are the sweep owner's or an admin's; others see them disabled.
    """
    try:
        info = sweeps.summary(ws, sweep_id)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    started_message(sweep_id, info["status"])
    best = info["best"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", info["status"])
    c2.metric("Trials", f"{info['finished']} / {info['trials_planned']}")
    c3.metric("Best val accuracy", percent(best and best["best_val_accuracy"]))
    c4.metric("Workers", len(info["workers"]))
    b1, b2, b3 = st.columns(3)
    if best and b1.button("Open best in Train", key=f"{KEY}open_{sweep_id}", type="primary",
                          help=f"Trial {best['number']}, the best completed one: its settings "
                               "in the form, its results below them."):
        run = RunStore(ws).get_run(best["run_id"])
        open_in_train(run["config"], run["name"], run_id=run["id"])
    owner = info["owner"]
    if info["workers"]:
        refused = denied(actor, auth.MANAGE_OWN, owner, "cancel this sweep")
        cancel = b2.button("Cancel sweep", key=f"{KEY}cancel_{sweep_id}",
                           disabled=refused is not None, help=refused)
        if cancel and permitted(actor, auth.MANAGE_OWN, owner, "cancel this sweep"):
            stopped = sweeps.cancel(ws, sweep_id)
            st.toast(f"Sweep cancelled; {stopped} running trial(s) stopped.")
    if info["status"] in ("stopped", sweeps.CANCELLED):
        refused = denied(actor, auth.LAUNCH, owner, "resume this sweep")
        resume = b3.button("Resume sweep", key=f"{KEY}resume_{sweep_id}",
                           disabled=refused is not None, help=refused)
        if resume and permitted(actor, auth.LAUNCH, owner, "resume this sweep"):
            sweeps.resume(ws, sweep_id)
            st.toast("Sweep resumed.")
    trials = sweepcharts.trials_frame(info["trials"])
    st.markdown("**Leaderboard**")
    board = trials.sort_values("best_val_accuracy", ascending=False, na_position="last")
    st.dataframe(board, hide_index=True, width="stretch", key=f"{KEY}board_{sweep_id}",
                 column_config={"trial": "Trial", "state": "State", "run_id": "Run",
                                "best_val_accuracy": st.column_config.NumberColumn(
                                    "Val accuracy", format="%.3f"),
                                "seconds": st.column_config.NumberColumn("Seconds",
                                                                         format="%.1f")})
    left, right = st.columns(2)
    left.plotly_chart(sweepcharts.best_so_far(trials), theme=None,
                      key=f"{KEY}best_{sweep_id}")
    values = importances(ws, sweep_id, info)
    right.plotly_chart(sweepcharts.importance(values), theme=None,
                       key=f"{KEY}importance_{sweep_id}")
    completed = sum(t["state"] == "complete" for t in info["trials"])
    if values and completed < IMPORTANCE_RELIABLE_TRIALS:
        right.caption(f":material/info: From {completed} completed trials only: parameter "
                      f"importance needs about {IMPORTANCE_RELIABLE_TRIALS} or more to be "
                      "reliable. Read it as a hint.")
    done = [t for t in info["trials"] if t["state"] == "complete" and t["run_id"]]
    if len(done) >= 2:
        runs = [RunStore(ws).get_run(t["run_id"]) for t in done]
        logs = {k for k, entry in info["space"].items() if entry.get("log")}
        st.plotly_chart(parcoords.parallel_coordinates(charts.runs_frame(runs),
                                                       list(info["space"]), log_params=logs),
                        theme=None, key=f"{KEY}parallel_{sweep_id}")


def started_message(sweep_id: str, status: str) -> None:
    """"Sweep ... started" for the sweep this session started, while it runs, then never again.

    The sweep view is a fragment on a timer: a message drawn by the page around it
    would stay on screen, stale, until the next click.
    """
    started = st.session_state.get(STARTED_KEY)
    if started is None:
        return
    if started[0] == sweep_id and status == sweeps.RUNNING:
        st.success(started[1], icon=":material/check_circle:")
    else:
        del st.session_state[STARTED_KEY]


def importances(ws: Workspace, sweep_id: str, info: dict[str, Any]) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA), once two trials have completed."""
    done = [t for t in info["trials"] if t["state"] == "complete"]
    if len(done) < 2 or len(info["space"]) < 2:
        return {}
    import optuna

    study, _ = sweeps.load(ws, sweep_id)
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # all trials alike: nothing to attribute
        return {}


def render() -> None:
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Sweeps")
    st.caption("Try many settings at once: an Optuna study over any run settings, each trial "
               "an ordinary run. Trials on cached features take seconds.")
    try:
        items = list(reversed(sweeps.list_sweeps(ws)))
    except TLCoreError as exc:  # e.g. the database is unreachable
        st.error(plain(exc))
        return
    with st.expander("New sweep", expanded=not items):
        new_sweep(ws, actor)
    if not items:
        st.info("No sweeps yet.")
        return
    labels = {s["id"]: f"{s['name']} ({s['id']}) · {s['trials_planned']} trials"
                       + (f" · by {s['owner']}" if s["owner"] else "")
              for s in items}
    wanted = st.query_params.get("sweep")
    ids = list(labels)
    chosen = st.selectbox("Sweep", ids, index=ids.index(wanted) if wanted in ids else 0,
                          format_func=labels.get, key=KEY + "chosen")
    st.query_params["sweep"] = chosen
    sweep_view(ws, chosen, actor)


render()
