"""Sweeps page: the space from the config declaration, refusals, leaderboard and charts."""

from __future__ import annotations

import optuna

from tests.ui.conftest import add_run
from tests.ui.markup import chart_strings, shown
from tlcore.config import RunConfig
from tlcore.runs import sweeps
from tlcore.store import RunStore

SWEEPS = "app_pages/sweeps.py"


def finished_sweep(ws) -> tuple[str, list[str]]:
    """A sweep over pooling and learning rate whose three trials are finished runs."""
    base = RunConfig.from_dict({"dataset": "pets", "image_size": 32,
                                "base": {"weights": "none"}})
    space = {"head.pooling": {"choices": ["flatten", "avg"]},
             "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    sweep_id = sweeps.create(ws, base, space, trials=3, name="heads")
    study, _ = sweeps.load(ws, sweep_id)
    dims = sweeps.parse_space(space, base)
    store = RunStore(ws)
    run_ids = []
    for number, (pooling, rate) in enumerate([("flatten", 1e-3), ("avg", 3e-3), ("avg", 1e-4)]):
        run_id = add_run(store, name=f"heads-{number}", head={"pooling": pooling},
                         train={"learning_rate": rate})
        store.merge_extra(run_id, sweep=sweep_id, trial=number)
        study.add_trial(optuna.trial.create_trial(
            params={"head.pooling": pooling, "train.learning_rate": rate},
            distributions={k: d.distribution() for k, d in dims.items()},
            value=store.get_run(run_id)["best_val_accuracy"], user_attrs={"run_id": run_id}))
        run_ids.append(run_id)
    sweeps.set_status(ws, sweep_id, sweeps.DONE)
    return sweep_id, run_ids


def test_the_form_offers_declared_keys_and_refuses_a_bad_space(app, ws, populated):
    at = app(SWEEPS)
    assert not at.exception
    keys = at.multiselect(key="sweep_keys")
    assert keys.value == ["head.pooling", "head.dense", "head.dropout", "train.learning_rate"]
    assert "dataset" not in keys.options and "train.epochs" in keys.options
    assert at.multiselect(key="sweep_head.pooling").options == ["flatten", "avg", "max"]
    at.number_input(key="sweep_head.dropout_high").set_value(2.0)
    at.button(key="sweep_start").click().run()
    errors = [shown(e.value) for e in at.error]
    assert errors == ["Space head.dropout: high 2.0 is not allowed; head.dropout takes a "
                      "number in [0.0, 1.0)."]
    assert sweeps.list_sweeps(ws) == []


def test_a_sweep_shows_its_leaderboard_charts_and_opens_the_best_in_train(app, ws, populated):
    sweep_id, run_ids = finished_sweep(ws)
    at = app(SWEEPS)
    assert not at.exception
    assert at.selectbox(key="sweep_chosen").value == sweep_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "3 / 3" and metrics["Status"] == "done"
    board = at.dataframe[0].value
    assert list(board["trial"]) == [2, 1, 0]  # best first: add_run's accuracies rise
    assert set(board["run_id"]) == set(run_ids)
    strings = chart_strings(at)
    assert {"Best val accuracy so far", "Parameter importance", "best so far"} <= set(strings)
    assert {"pooling", "learning_rate"} <= set(strings)  # importance bars and parallel axes
    keys = {c.key for c in at.get("plotly_chart")}
    assert f"sweep_parallel_{sweep_id}" in keys
    at.button(key=f"sweep_open_{sweep_id}").click().run()
    assert not at.exception  # now on the Train page, the best trial's settings loaded
    assert at.number_input(key="cfg.train.learning_rate").value == 1e-4
    assert at.selectbox(key="cfg.head.pooling").value == "avg"
    assert "Loaded the cloned run's settings. Edit and launch." in [s.value for s in at.success]
