"""Evaluate-page figures: pure builders, checked without Streamlit."""

from __future__ import annotations

import inspect

import pandas as pd
import plotly.graph_objects as go
import pytest

from tlcore.charts import evaluation as evalcharts
from tlcore.charts import theme

REPORT = {"source_label": "ImageNet", "verdict": "positive transfer",
          "curves": {"pretrained": {"epoch": [1, 2], "val_accuracy": [0.6, 0.8]},
                     "baseline": {"epoch": [1, 2, 3], "val_accuracy": [0.3, 0.4, 0.5]}}}


def test_confusion_figure_colours_by_row_share_and_has_clickable_cells():
    fig = evalcharts.confusion_figure([[3, 1], [0, 0]], ["cat", "dog"])
    heat, cells = fig.data
    assert heat.type == "heatmap" and list(heat.x) == ["cat", "dog"]
    assert heat.z[0][0] == 0.75 and heat.z[0][1] == 0.25
    assert all(v != v for v in heat.z[1])  # a class with no examples: NaN, drawn blank
    assert cells.type == "scatter" and len(cells.x) == 4
    # customdata = [true index, predicted index, count]: "cat" predicted as "dog".
    row = [list(c) for c in cells.customdata].index([0, 1, 1])
    assert (cells.y[row], cells.x[row]) == ("cat", "dog")
    assert fig.layout.yaxis.autorange == "reversed"


def test_confusion_figure_takes_stored_normalized_with_nulls():
    fig = evalcharts.confusion_figure([[1, 1], [0, 0]], ["a", "b"],
                                      normalized=[[0.5, 0.5], [None, None]])
    assert fig.data[0].z[0][1] == 0.5


def test_per_class_figure_has_three_bar_groups():
    rows = [{"class": "a", "precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 2},
            {"class": "b", "precision": None, "recall": 0.0, "f1": 0.0, "support": 1}]
    fig = evalcharts.per_class_figure(pd.DataFrame(rows))
    assert [t.name for t in fig.data] == ["precision", "recall", "f1"]
    assert list(fig.data[1].y) == [1.0, 0.0]


def test_transfer_curves_and_topk_figures():
    fig = evalcharts.transfer_curves_figure(REPORT)
    assert [len(t.x) for t in fig.data] == [2, 3]
    assert "positive transfer" in fig.layout.title.text
    top = [{"class": "a", "probability": 0.7}, {"class": "b", "probability": 0.2}]
    bars = evalcharts.topk_figure(top)
    assert list(bars.data[0].y) == ["a", "b"] and bars.data[0].text[0] == "70.0%"


def test_f1_delta_between_two_runs():
    a = {"per_class": [{"class": "cat", "f1": 0.5}, {"class": "dog", "f1": 0.9},
                       {"class": "owl", "f1": None}]}
    b = {"per_class": [{"class": "dog", "f1": 0.7}, {"class": "cat", "f1": 0.75},
                       {"class": "owl", "f1": 0.2}]}
    df = evalcharts.f1_delta_frame(a, b)
    assert df["class"].tolist() == ["cat", "dog", "owl"]
    assert df["delta"].tolist()[:2] == pytest.approx([0.25, -0.2])
    assert df["delta"].isna().tolist() == [False, False, True]
    fig = evalcharts.f1_delta_figure(df, "run-1", "run-2")
    assert fig.data[0].marker.color[:2] == (evalcharts.GAIN_COLOR, evalcharts.LOSS_COLOR)
    assert list(fig.data[0].text) == ["+0.25", "-0.20", ""]
    assert "run-2 minus run-1" in fig.layout.title.text


def test_f1_delta_keeps_run_a_class_order_then_b_only_classes():
    a = {"per_class": [{"class": "dog", "f1": 0.5}, {"class": "cat", "f1": 0.9},
                       {"class": "ant", "f1": 0.1}]}
    b = {"per_class": [{"class": "zebra", "f1": 0.3}, {"class": "cat", "f1": 0.8},
                       {"class": "dog", "f1": 0.6}]}
    df = evalcharts.f1_delta_frame(a, b)
    assert df["class"].tolist() == ["dog", "cat", "ant", "zebra"]
    assert df["delta"].tolist()[:2] == pytest.approx([0.1, -0.1])
    assert df["delta"].isna().tolist() == [False, False, True, True]


def _every_figure() -> dict[str, go.Figure]:
    per_class = [{"class": "a", "precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 2}]
    delta = evalcharts.f1_delta_frame({"per_class": [{"class": "a", "f1": 0.5}]},
                                      {"per_class": [{"class": "a", "f1": 0.7}]})
    return {
        "confusion_figure": evalcharts.confusion_figure([[3, 1], [0, 2]], ["a", "b"]),
        "per_class_figure": evalcharts.per_class_figure(per_class),
        "transfer_curves_figure": evalcharts.transfer_curves_figure(REPORT),
        "topk_figure": evalcharts.topk_figure([{"class": "a", "probability": 0.9}]),
        "f1_delta_figure": evalcharts.f1_delta_figure(delta, "run-1", "run-2"),
        "transfer_study_figure": evalcharts.transfer_study_figure([
            {"setting": setting, "images_per_class": size, "test_accuracy": accuracy,
             "status": "completed"}
            for setting, size, accuracy in (("pretrained", 5, 0.7), ("scratch", 5, 0.4),
                                            ("pretrained", 25, 0.8), ("scratch", 25, 0.85))]),
    }


@pytest.mark.parametrize("name", list(_every_figure()))
def test_every_figure_carries_the_project_template(name):
    fig = _every_figure()[name]
    assert fig.layout.template == theme.TEMPLATE
    assert fig.layout.height


def test_the_template_check_covers_every_builder():
    builders = {name for name, f in inspect.getmembers(evalcharts, inspect.isfunction)
                if f.__module__ == evalcharts.__name__ and not name.startswith("_")
                and inspect.signature(f).return_annotation == "go.Figure"}
    assert builders == set(_every_figure())


def test_evalcharts_module_does_not_import_streamlit_or_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tlcore.charts.evaluation; "
            "print(any(m in sys.modules for m in ('streamlit', 'tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _study_rows(points):
    return [{"setting": setting, "images_per_class": size, "test_accuracy": accuracy,
             "status": "completed" if accuracy is not None else "running"}
            for setting, size, accuracy in points]


def test_the_study_lines_stay_visible_where_they_coincide_and_pending_points_are_hollow():
    fig = evalcharts.transfer_study_figure(_study_rows([
        ("pretrained", 5, 0.8), ("scratch", 5, 0.8), ("pretrained", 25, 0.9),
        ("scratch", 25, None)]))
    pretrained, scratch = [t for t in fig.data if t.mode == "lines+markers"]
    # Same values at 5 images per class: other shapes, dash and sizes keep both in sight.
    assert (pretrained.line.dash, scratch.line.dash) == ("solid", "dash")
    assert list(pretrained.marker.symbol) == ["circle", "circle-open"]  # 25: partner pending
    assert list(scratch.marker.symbol) == ["diamond"]
    assert pretrained.marker.size > scratch.marker.size
    assert "has not finished" in pretrained.customdata[1]
    (note,) = fig.layout.annotations
    assert note.text == "3 of 4 runs finished; 1 queued or running; waiting at 25 images per " \
                        "class"
    fig = evalcharts.transfer_study_figure(_study_rows([
        ("pretrained", 5, 0.8), ("scratch", 5, 0.7), ("pretrained", 50, None),
        ("scratch", 50, None)]))
    assert list(fig.layout.xaxis.tickvals) == [5, 50]
    assert fig.layout.xaxis.range[1] > 1.69  # the pending size keeps its place (log10 50)


def test_an_empty_study_chart_has_no_axes_and_says_why():
    fig = evalcharts.transfer_study_figure(_study_rows([("pretrained", 5, None),
                                                        ("scratch", 5, None)]))
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert fig.layout.annotations[0].text == (
        "No run of the study has finished yet (0 of 2 runs finished; 2 queued or running).")
    assert fig.layout.template == theme.TEMPLATE


def test_confusion_ticks_show_every_class_readably_with_full_names_on_hover():
    names = ["ankle_boot", "pullover", "a_very_long_class_name_indeed", "bag", "coat"]
    fig = evalcharts.confusion_figure([[1] * 5] * 5, names)
    assert list(fig.layout.xaxis.tickvals) == names == list(fig.layout.yaxis.tickvals)
    assert list(fig.layout.xaxis.ticktext) == [
        "ankle_boot", "pullover", "a_very_…indeed", "bag", "coat"]
    assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin
    assert fig.layout.xaxis.tickangle == -45  # five classes: slanted, none dropped
    cells = fig.data[1]
    assert "a_very_long_class_name_indeed" in set(cells.x)  # hover names the class in full
    assert evalcharts.tick_labels(["ankle_boot_left_foot", "ankle_boot_right_foot", "<b>&"]) == [
        "ankle_boo…eft_foot", "ankle_boo…ght_foot", "&lt;b&gt;&amp;"]
