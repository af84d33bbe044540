"""Reading runs as in TensorBoard: curve options, schedule and speed, a run's details."""

from __future__ import annotations

import plotly.io as pio

from tlcore.store import RunStore
from tlcore.ui import run_detail

RUNS, TRAIN = "app_pages/runs.py", "app_pages/train.py"


def _figures(at) -> dict:
    """Plotly figures on the page by their chart key."""
    return {chart.key: pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")}


def _frame(at, column: str):
    """The one table on the page with `column` (tables without a selection have no key)."""
    (frame,) = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def _write_files(ws, run_id: str, log: str = "epoch 1\n") -> None:
    files = ws.run(run_id)
    (files.eval_dir / "gradcam").mkdir(parents=True, exist_ok=True)
    files.config.write_text("{}")
    files.history.write_text("epoch,loss\n1,0.5\n")
    files.log.write_text(log)
    files.trained.write_bytes(b"\0" * 2048)
    (files.eval_dir / "pets.json").write_text("{}")
    (files.eval_dir / "gradcam" / "a.png").write_bytes(b"\0" * 100)


def test_param_frame_lists_the_settings_off_the_defaults_first():
    frame = run_detail.param_frame({"dataset": "pets", "image_size": 32,
                                    "train": {"epochs": 2, "optimizer": "adam"}})
    changed = frame[frame["changed"]]
    assert set(changed["field"]) == {"image_size", "train.epochs"}
    assert frame["changed"].to_list() == sorted(frame["changed"], reverse=True)
    row = frame.set_index("field").loc["image_size"]
    assert row["value"] == "32" and row["default"] == "150"
    assert frame.set_index("field").loc["train.optimizer", "default"] == ""  # kept


def test_run_files_list_files_and_folder_totals(ws, make_run):
    run_id = make_run(name="a")
    assert run_detail.run_files(ws.run(run_id)).empty  # no folder yet
    _write_files(ws, run_id)
    listing = run_detail.run_files(ws.run(run_id)).set_index("name")
    assert list(listing.index) == ["config.json", "eval/", "history.csv", "log.txt",
                                   "trained.npz"]
    assert listing.loc["eval/", "size"] == 102 and listing.loc["eval/", "files"] == 2
    assert listing.loc["trained.npz", "size"] == 2048


def test_the_comparison_reads_curves_as_asked(app, populated):
    at = app(RUNS)
    at.session_state["runs_table"] = {"selection": {"rows": [1, 2], "columns": []}}
    at.run()
    plain = _figures(at)["runs_curves"]
    assert plain.layout.xaxis.title.text == "Epoch" and plain.layout.yaxis.type != "log"
    assert all(t.marker.symbol != "star" for t in plain.data)
    at.segmented_control(key="runs_x").set_value("time")
    at.slider(key="runs_smoothing").set_value(0.6)
    at.toggle(key="runs_log_y").set_value(True)
    at.toggle(key="runs_best").set_value(True)
    at.segmented_control(key="runs_metric").set_value("loss").run()
    assert not at.exception
    fig = _figures(at)["runs_curves"]
    assert fig.layout.xaxis.title.text == "Time since start (s)"
    assert fig.layout.yaxis.type == "log"
    assert sum(t.opacity == 0.25 for t in fig.data) == 4  # a raw curve behind each
    assert sum(t.marker.symbol == "star" for t in fig.data) == 2
    assert set(_figures(at)) == {"runs_curves", "runs_final", "runs_parallel"}
    # The choices stay while another page is open.
    at.switch_page(TRAIN).run()
    at.switch_page(RUNS).run()
    at.session_state["runs_table"] = {"selection": {"rows": [1, 2], "columns": []}}
    at.run()
    assert at.toggle(key="runs_log_y").value and at.slider(key="runs_smoothing").value == 0.6


def test_the_comparison_shows_schedule_speed_and_one_runs_details(app, ws, populated):
    _write_files(ws, populated["adam"])
    at = app(RUNS)
    at.session_state["runs_table"] = {"selection": {"rows": [1, 2], "columns": []}}
    at.run()
    at.segmented_control(key="runs_more").set_value(["schedule", "detail"]).run()
    assert not at.exception
    figs = _figures(at)
    assert {t.name for t in figs["runs_lr"].data} == {"sgd-avg", "adam-flatten"}
    assert figs["runs_epoch_time"].layout.yaxis.title.text == "Seconds"
    at.selectbox(key="runs_detail_run").set_value(populated["sgd"]).run()
    assert "No files yet" in " ".join(c.value for c in at.caption)
    at.selectbox(key="runs_detail_run").set_value(populated["adam"]).run()
    params = _frame(at, "default")
    assert params["field"].iloc[0] == "image_size"  # off the defaults: listed first
    assert {"train.epochs", "fine_tune.blocks"} <= set(params["field"][params["default"] != ""])
    labels = [b.label for b in at.get("download_button")]
    assert {"config.json", "history.csv", "log.txt"} <= set(labels)


def test_the_run_panel_has_schedule_and_details_of_a_finished_run(app, ws, populated,
                                                                 monkeypatch):
    _write_files(ws, populated["adam"], log="x" * 300)
    monkeypatch.setattr(run_detail, "DOWNLOAD_MAX_BYTES", 200)
    at = app()
    at.query_params["run"] = populated["adam"]
    at.switch_page(TRAIN).run()
    labels = [e.label for e in at.expander]
    assert "Schedule and speed" in labels and "Details, parameters and files" in labels
    assert "train_lr" not in _figures(at)  # closed: not drawn
    at.session_state["train_schedule"] = True
    at.session_state["train_detail"] = True
    at.run()
    assert not at.exception
    assert {"train_lr", "train_epoch_time"} <= set(_figures(at))
    stars = [t for t in _figures(at)["train_live_loss"].data if t.marker.symbol == "star"]
    assert len(stars) == 1 and list(stars[0].x) == [4]
    files = _frame(at, "files")
    assert files.set_index("name").loc["trained.npz", "size"] == "2.0 KiB"
    assert [b.label for b in at.get("download_button")] == ["config.json", "history.csv"]
    assert any("log.txt is 300 B, over the download limit" in c.value for c in at.caption)
    assert RunStore(ws).get_run(populated["adam"])["status"] == "completed"
