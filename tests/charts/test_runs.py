"""Chart builders: pure functions from frames to Plotly figures (no Streamlit)."""

from __future__ import annotations

import inspect
import json
import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from tlcore.charts import evaluation as evalcharts
from tlcore.charts import parcoords, schedule, theme
from tlcore.charts import runs as charts
from tlcore.config import RunConfig


def _metrics(run: str, run_id: str, phases: list[int]) -> list[dict]:
    return [
        {"run_id": run_id, "epoch": i + 1, "phase": p, "loss": 1.0 / (i + 1),
         "accuracy": 0.5 + 0.05 * i, "val_loss": 1.1 / (i + 1), "val_accuracy": 0.45 + 0.05 * i,
         "learning_rate": 1e-3, "epoch_time": 2.0}
        for i, p in enumerate(phases)
    ]


def _run(run_id: str, name: str, status: str = "completed", **config) -> dict:
    cfg = RunConfig.from_dict({"dataset": "demo", **config}).to_dict()
    return {"id": run_id, "seq": 1, "name": name, "dataset": "demo", "config": cfg,
            "status": status, "created": 1_700_000_000.0, "started": 1_700_000_010.0,
            "ended": 1_700_000_095.0, "device": "CPU", "error": None,
            "best_val_accuracy": 0.8, "best_val_loss": 0.4, "best_epoch": 3,
            "test_metrics": {"loss": 0.5, "accuracy": 0.75}}


def test_class_balance_stacks_one_trace_per_split():
    df = charts.counts_frame({"cat": {"train": 7, "val": 2, "test": 1, "total": 10},
                              "dog": {"train": 14, "val": 4, "test": 2, "total": 20}})
    fig = charts.class_balance(df)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["train", "val", "test"]
    assert list(fig.data[0].x) == ["cat", "dog"] and list(fig.data[0].y) == [7, 14]
    assert fig.layout.barmode == "stack"
    assert fig.layout.xaxis.title.text == "Class" and fig.layout.yaxis.title.text == "Images"


def test_learning_curves_train_and_val_per_run_with_phase_boundary():
    rows = _metrics("a", "aaaaaaaaaaaa", [1, 1, 1, 2, 2]) + _metrics("b", "bbbbbbbbbbbb", [1, 1])
    df = charts.metrics_frame(rows, {"aaaaaaaaaaaa": "a", "bbbbbbbbbbbb": "b"})
    fig = charts.learning_curves(df, metric="accuracy")
    assert [t.name for t in fig.data] == ["a · train", "a · val", "b · train", "b · val"]
    assert fig.data[0].line.dash == "solid" and fig.data[1].line.dash == "dash"
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    # Only run "a" fine-tunes: one boundary line between epochs 3 and 4.
    assert [s.x0 for s in fig.layout.shapes] == [3.5]
    assert fig.layout.xaxis.title.text == "Epoch"
    assert fig.layout.yaxis.title.text == "Accuracy"
    no_lines = charts.learning_curves(df, metric="loss", phase_boundaries=False, splits=["val"])
    assert len(no_lines.layout.shapes) == 0
    assert [t.name for t in no_lines.data] == ["a · val", "b · val"]


def test_learning_curves_single_run_names_and_selection():
    df = charts.metrics_frame(_metrics("a", "aaaaaaaaaaaa", [1, 1]), {"aaaaaaaaaaaa": "a"})
    fig = charts.learning_curves(df, "loss")
    assert [t.name for t in fig.data] == ["train", "val"]
    # A single run is coloured by split.
    assert [t.line.color for t in fig.data] == [charts.SPLIT_COLORS["train"],
                                                charts.SPLIT_COLORS["val"]]
    assert charts.learning_curves(df, runs=["zzz"]).data == ()
    with pytest.raises(ValueError, match="metric must be one of loss, accuracy"):
        charts.learning_curves(df, metric="f1")
    with pytest.raises(ValueError, match="splits"):
        charts.learning_curves(df, splits=["test"])


def test_empty_frames_give_titled_figures_with_a_message():
    empty = charts.metrics_frame([], {})
    fig = charts.learning_curves(empty, "loss")
    assert fig.data == () and fig.layout.title.text == "Loss"
    assert "No epochs" in fig.layout.annotations[0].text
    assert charts.class_balance(charts.counts_frame({})).layout.annotations
    assert charts.final_metrics_bar(charts.runs_frame([])).layout.annotations


def test_final_metrics_bar_groups_metrics_per_run():
    df = charts.runs_frame([_run("aaaaaaaaaaaa", "a"), _run("bbbbbbbbbbbb", "b")])
    fig = charts.final_metrics_bar(df)
    assert [t.name for t in fig.data] == ["Best val accuracy", "Test accuracy"]
    assert list(fig.data[1].x) == ["a", "b"] and list(fig.data[1].y) == [0.75, 0.75]
    assert fig.layout.barmode == "group"


def test_parallel_coordinates_axes_and_categorical_ticks():
    runs = [_run("aaaaaaaaaaaa", "a", train={"optimizer": "adam", "learning_rate": 1e-3}),
            _run("bbbbbbbbbbbb", "b", train={"optimizer": "sgd", "learning_rate": 1e-2}),
            _run("cccccccccccc", "c", status="running")]
    runs[2]["best_val_accuracy"] = None
    df = charts.runs_frame(runs)
    fig = parcoords.parallel_coordinates(df, ["train.optimizer", "train.learning_rate",
                                           "head.dense"])
    (trace,) = fig.data
    assert isinstance(trace, go.Parcoords)
    labels = [d.label for d in trace.dimensions]
    assert labels == ["optimizer", "learning_rate", "dense", "Best val accuracy"]
    assert list(trace.dimensions[0].ticktext) == ["adam", "sgd"]
    assert list(trace.dimensions[2].ticktext) == ["[256]"]
    # Learning rates 10x apart get a log axis labelled with the real values.
    assert list(trace.dimensions[1].ticktext) == ["0.001", "0.01"]
    assert list(trace.dimensions[1].values) == pytest.approx([-3.0, -2.0])
    # The running run has no target value yet and is left out.
    assert len(trace.dimensions[-1].values) == 2
    none_yet = parcoords.parallel_coordinates(df.assign(best_val_accuracy=None), ["image_size"])
    assert none_yet.data == () and "No finished runs" in none_yet.layout.annotations[0].text


def _every_figure() -> dict[str, go.Figure]:
    """One figure of every builder, empty inputs included."""
    rows = _metrics("a", "aaaaaaaaaaaa", [1, 1, 2])
    metrics = charts.metrics_frame(rows, {"aaaaaaaaaaaa": "a"})
    runs = charts.runs_frame([_run("aaaaaaaaaaaa", "a"),
                              _run("bbbbbbbbbbbb", "b", train={"optimizer": "sgd"})])
    counts = charts.counts_frame({"cat": {"train": 7, "val": 2, "test": 1}})
    return {
        "class_balance": charts.class_balance(counts),
        "class_balance_empty": charts.class_balance(charts.counts_frame({})),
        "learning_curves": charts.learning_curves(metrics, "accuracy"),
        "learning_curves_empty": charts.learning_curves(charts.metrics_frame([], {})),
        "final_metrics_bar": charts.final_metrics_bar(runs),
        "final_metrics_bar_empty": charts.final_metrics_bar(charts.runs_frame([])),
        "parallel_coordinates": parcoords.parallel_coordinates(runs, ["train.optimizer"]),
        "parallel_coordinates_empty": parcoords.parallel_coordinates(
            runs.assign(best_val_accuracy=None), ["image_size"]),
        "learning_rate_chart": schedule.learning_rate_chart(metrics),
        "learning_rate_chart_empty": schedule.learning_rate_chart(charts.metrics_frame([], {})),
        "epoch_time_chart": schedule.epoch_time_chart(metrics, x="time"),
        "epoch_time_chart_empty": schedule.epoch_time_chart(charts.metrics_frame([], {})),
    }


@pytest.mark.parametrize("name", list(_every_figure()))
def test_every_figure_carries_the_project_template(name):
    fig = _every_figure()[name]
    assert fig.layout.template == theme.TEMPLATE
    assert list(fig.layout.template.layout.colorway) == list(theme.COLORWAY)
    # Streamlit draws a figure without a height of its own at 450 px.
    assert fig.layout.height


def test_the_template_check_covers_every_builder():
    builders = {name for module in (charts, parcoords, schedule)
                for name, f in inspect.getmembers(module, inspect.isfunction)
                if f.__module__ == module.__name__ and not name.startswith("_")
                and inspect.signature(f).return_annotation == "go.Figure"} - {"styled"}
    assert builders == {name.removesuffix("_empty") for name in _every_figure()}


def test_short_labels_keep_the_section_only_where_needed():
    assert parcoords.short_labels(["train.epochs", "fine_tune.epochs", "head.pooling"]) == {
        "train.epochs": "train.epochs", "fine_tune.epochs": "fine_tune.epochs",
        "head.pooling": "pooling"}


def test_config_diff_keeps_only_differing_fields():
    a = RunConfig(dataset="demo").flat()
    b = RunConfig.from_dict({"dataset": "demo", "head": {"dense": [128, 64]},
                             "train": {"learning_rate": 0.01}}).flat()
    c = dict(a)
    diff = charts.config_diff({"a": a, "b": b, "c": c})
    assert list(diff.columns) == ["a", "b", "c"]
    assert list(diff.index) == ["head.dense", "train.learning_rate"]
    assert diff.loc["head.dense"].to_list() == ["[256]", "[128, 64]", "[256]"]
    assert diff.loc["train.learning_rate", "b"] == "0.01"
    assert charts.config_diff({"a": a, "c": c}).empty
    assert charts.config_diff({"a": a}).empty
    partial = charts.config_diff({"a": {"x": 1}, "b": {"x": 1, "y": 2}})
    assert partial.loc["y"].to_list() == ["—", "2"]


def test_runs_frame_labels_durations_and_params():
    runs = [_run("aaaaaaaaaaaa", "same"), _run("bbbbbbbbbbbb", "same"),
            _run("cccccccccccc", "solo", status="running")]
    runs[2]["ended"] = None
    df = charts.runs_frame(runs, now=1_700_000_130.0)
    assert df["run"].to_list() == ["same (aaaaaa)", "same (bbbbbb)", "solo"]
    assert df["duration"].to_list() == ["1m 25s", "1m 25s", "2m 00s"]
    assert df.loc[0, "test_accuracy"] == 0.75 and df.loc[0, "train.optimizer"] == "adam"
    assert parcoords.differing_params(df) == ["image_size", "base.weights", "head.pooling"]
    df.loc[1, "train.optimizer"] = "sgd"
    assert parcoords.differing_params(df) == ["train.optimizer"]


def test_format_duration_and_run_colors():
    assert charts.format_duration(None) == ""
    assert charts.format_duration(42.4) == "42s"
    assert charts.format_duration(3725) == "1h 02m"
    colors = charts.run_colors(["x", "y", "x"])
    assert list(colors) == ["x", "y"] and colors["x"] == theme.COLORWAY[0]


def test_charts_module_does_not_import_streamlit_or_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tlcore.charts.runs, tlcore.charts.schedule; "
            "print(any(m in sys.modules for m in ('streamlit', 'tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Names a class or run may have; Plotly would render the tags (a link, bold text).
HTML_NAMES = ("<a href='http://127.0.0.1:9/'>open</a>", "<b>bold</b> & co")


def _plotly_strings(fig: go.Figure) -> list[str]:
    """Every string of a figure (titles, ticks, names, hover templates, meta)."""
    def walk(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from walk(item)

    return list(walk(json.loads(fig.to_json())))


def test_chart_text_escapes_tags_and_entities_only():
    assert theme.chart_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert theme.chart_text("it's \"fine\" :red[ok] $x$") == "it's \"fine\" :red[ok] $x$"
    assert theme.chart_text(42) == "42"


def _name_figures() -> dict[str, go.Figure]:
    a, b = HTML_NAMES
    metrics = charts.metrics_frame(_metrics(a, "r1", [1, 1]) + _metrics(b, "r2", [1, 2]),
                                   {"r1": a, "r2": b})
    runs = charts.runs_frame([_run("r1", a), _run("r2", b, head={"pooling": "avg"})])
    per_class = [{"class": name, "precision": 0.5, "recall": 0.5, "f1": f1, "auc": 0.5,
                  "support": 3} for name, f1 in zip(HTML_NAMES, (0.4, 0.6), strict=True)]
    delta = evalcharts.f1_delta_frame({"per_class": per_class},
                                      {"per_class": per_class[::-1]})
    return {
        "class_balance": charts.class_balance(charts.counts_frame(
            {name: {"train": 3, "val": 1, "test": 1} for name in HTML_NAMES})),
        "learning_curves": charts.learning_curves(metrics, "loss", title=f"Loss of {a}"),
        "learning_curves_single": charts.learning_curves(metrics[metrics["run"] == a], "loss"),
        "final_metrics_bar": charts.final_metrics_bar(runs),
        "confusion": evalcharts.confusion_figure([[1, 2], [0, 3]], HTML_NAMES,
                                                 title=f"{b} · test"),
        "per_class": evalcharts.per_class_figure(per_class),
        "topk": evalcharts.topk_figure([{"class": name, "probability": 0.5}
                                        for name in HTML_NAMES]),
        "f1_delta": evalcharts.f1_delta_figure(delta, a, b),
    }


@pytest.mark.parametrize("name", list(_name_figures()))
def test_names_in_figures_show_as_typed_never_as_html(name):
    strings = _plotly_strings(_name_figures()[name])
    for text in strings:
        assert "<a " not in text and "<b>" not in text, text
    escaped = {theme.chart_text(n) for n in HTML_NAMES}
    assert any(e in text for text in strings for e in escaped)
    # Hover templates read names from `meta` or the point: a name is never parsed as one.
    for text in strings:
        if "%{" in text:
            assert not any(e in text for e in escaped), text


# ---- 10-50 runs: legends, bar labels, the config diff and axis labels stay readable ---------
def _many_runs(n: int = 40) -> list[dict]:
    return [_run(f"{i:012x}", f"experiment-{i:02d}-with-a-long-name",
                 train={"learning_rate": 10.0 ** -(1 + i % 4), "optimizer": ("adam", "sgd")[i % 2],
                        "early_stopping_patience": i % 5},
                 head={"dense": [64 * (1 + i % 3)]},
                 base={"weights": "file:/srv/shared/weights/vgg16_weights_tf_dim_ordering_"
                                  f"notop-{i % 2}.h5"})
            for i in range(n)]


def _legend_below(fig: go.Figure) -> bool:
    legend = fig.layout.legend
    return (legend.orientation == "h" and legend.yref == "container" and legend.y == 0
            and legend.yanchor == "bottom" and fig.layout.margin.b > theme.MARGIN["b"])


def _legend_right(fig: go.Figure) -> bool:
    legend = fig.layout.legend
    return legend.orientation == "v" and legend.x > 1 and legend.xanchor == "left"


def test_legends_never_sit_over_the_title():
    few = charts.metrics_frame(_metrics("a", "r1", [1, 1]) + _metrics("b", "r2", [1, 1]),
                               {"r1": "a", "r2": "b"})
    assert _legend_below(charts.learning_curves(few, "loss"))
    runs = _many_runs()
    labels = charts.run_labels(runs)
    rows = [row for r in runs for row in _metrics(labels[r["id"]], r["id"], [1, 1, 2])]
    fig = charts.learning_curves(charts.metrics_frame(rows, labels), "accuracy")
    # 40 runs: one entry per run (toggling both its curves), in columns below the plot.
    assert len(fig.data) == 80 and theme.legend_entries(fig) == 40
    assert [t.name for t in fig.data if t.showlegend is not False] == list(labels.values())
    assert _legend_below(fig) and fig.layout.legend.title.text == "solid: train · dashed: val"
    # One "fine-tuning" label where 40 runs start fine-tuning at the same epoch.
    assert [a.text for a in fig.layout.annotations] == ["fine-tuning"]
    assert len(fig.layout.shapes) == 40
    # Every legend stays off the title: below the plot or right of it, never on top.
    for fig in (*_every_figure().values(), charts.final_metrics_bar(charts.runs_frame(runs))):
        if theme.legend_entries(fig) > 1:
            assert _legend_below(fig) or _legend_right(fig)


def test_learning_curves_of_ten_runs_list_each_run_once_in_columns_below_the_plot():
    names = [f"run-{i}" for i in range(10)]
    rows = [row for i, name in enumerate(names) for row in _metrics(name, f"r{i}", [1, 1, 1])]
    fig = charts.learning_curves(charts.metrics_frame(rows, dict(zip(
        [f"r{i}" for i in range(10)], names, strict=True))), "accuracy")
    assert [t.name for t in fig.data if t.showlegend is not False] == names
    legend = fig.layout.legend
    assert _legend_below(fig) and legend.title.text == "solid: train · dashed: val"
    assert legend.title.side == "top"
    # Aligned columns as wide as the longest name; the figure grows by the legend's rows,
    # so the plot keeps its height and the legend never scrolls.
    assert legend.entrywidthmode == "pixels" and legend.entrywidth >= 7 * len("run-0")
    per_row = charts.CURVES_WIDTH_PX // legend.entrywidth
    rows_px = theme.LEGEND_ROW_PX * (1 + -(-10 // per_row))
    assert fig.layout.margin.b >= theme.MARGIN["b"] + rows_px
    assert fig.layout.height - fig.layout.margin.b == theme.HEIGHT - theme.MARGIN["b"]
    # Val curves are dashed and thicker than train curves.
    train, val = fig.data[0], fig.data[1]
    assert (train.line.dash, val.line.dash) == ("solid", "dash")
    assert val.line.width > train.line.width


def test_parallel_coordinates_say_how_many_settings_they_leave_out():
    runs = [_run(f"{i:012x}", f"r{i}", image_size=32 + 8 * i,
                 head={"dropout": 0.1 * i, "dense": [64 + i], "pooling": ("avg", "max")[i % 2]},
                 train={"learning_rate": 10.0 ** -(2 + i), "batch_size": 8 + i,
                        "epochs": 2 + i, "optimizer": ("adam", "sgd")[i % 2],
                        "early_stopping_patience": 1 + i, "seed": i})
            for i in range(3)]
    df = charts.runs_frame(runs)
    params = parcoords.differing_params(df, limit=None)
    assert len(params) == 10
    fig = parcoords.parallel_coordinates(df, params)
    assert len(fig.data[0].dimensions) == parcoords.PARCOORDS_AXES_MAX + 1  # and the target
    assert "2 more settings differ, not shown" in fig.layout.title.text
    assert "not shown" not in parcoords.parallel_coordinates(df, params[:8]).layout.title.text


def test_one_outlier_does_not_stretch_the_colour_scale():
    accuracies = [0.05, 0.86, 0.87, 0.88, 0.89, 0.9, 0.91, 0.92]
    runs = [_run(f"{i:012x}", f"r{i}", train={"optimizer": ("adam", "sgd")[i % 2]})
            for i in range(len(accuracies))]
    for run, accuracy in zip(runs, accuracies, strict=True):
        run["best_val_accuracy"] = accuracy
    line = parcoords.parallel_coordinates(charts.runs_frame(runs), ["train.optimizer"]).data[0].line
    assert (line.cmin, line.cmax) == (0.86, 0.92)  # the diverged run takes the lowest colour
    # A few runs keep their whole range.
    assert parcoords.color_range([0.5, 0.6, 0.9]) == (0.5, 0.9)
    assert parcoords.color_range([0.8, 0.8, 0.8, 0.1]) == (0.1, 0.8)


def test_log_sampled_settings_get_a_log_axis_with_short_ticks():
    rates = [0.000739219, 0.00123456, 0.00201]  # less than 10x apart
    runs = [_run(f"{i:012x}", f"r{i}", train={"learning_rate": rate})
            for i, rate in enumerate(rates)]
    df = charts.runs_frame(runs)
    linear = parcoords.parallel_coordinates(df, ["train.learning_rate"]).data[0].dimensions[0]
    assert linear.tickformat == ".3~g" and not linear.ticktext
    (axis, _) = parcoords.parallel_coordinates(
        df, ["train.learning_rate"], log_params={"train.learning_rate"}).data[0].dimensions
    assert list(axis.values) == pytest.approx([math.log10(r) for r in rates])
    assert list(axis.ticktext) == ["0.000739", "0.00123", "0.00201"]
    # Many values: a few ticks spread over the range, not one per run.
    many = parcoords.log_axis(pd.Series([1e-4 * 1.3 ** i for i in range(20)]))
    assert len(many["ticktext"]) == parcoords.LOG_TICKS_MAX
    assert all(len(t.replace("0.", "").lstrip("0")) <= 4 for t in many["ticktext"])


def test_final_metrics_of_40_runs_lie_as_rows_without_value_labels():
    few = charts.final_metrics_bar(charts.runs_frame(_many_runs(5)))
    assert [t.orientation for t in few.data] == [None, None]
    assert few.data[0].textposition == "outside" and few.layout.uniformtext.mode == "hide"
    fig = charts.final_metrics_bar(charts.runs_frame(_many_runs()))
    assert [t.orientation for t in fig.data] == ["h", "h"]
    assert [t.textposition for t in fig.data] == ["none", "none"]
    assert len(fig.data[0].y) == 40 and fig.data[0].y[0] == "experiment-00-with-a-long-name"
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.automargin
    # A row per run: the chart grows instead of squeezing 80 bars.
    assert fig.layout.height >= 40 * charts.BAR_ROW_PX
    assert "%{x:.4f}" in fig.data[0].hovertemplate


def test_config_diff_of_many_runs_has_a_row_per_run():
    runs = _many_runs()
    labels = charts.run_labels(runs)
    configs = {labels[r["id"]]: RunConfig.from_dict(r["config"]).flat() for r in runs}
    diff = charts.config_diff(configs)
    assert diff.index.name == "run" and list(diff.index) == list(labels.values())
    assert {"train.learning_rate", "train.optimizer", "head.dense"} <= set(diff.columns)
    six = dict(list(configs.items())[:6])
    assert charts.config_diff(six).index.name == "field"
    assert list(charts.config_diff(six).columns) == list(six)


def test_parallel_coordinates_of_many_runs_keep_labels_and_ticks_whole():
    df = charts.runs_frame(_many_runs())
    params = parcoords.differing_params(df)
    fig = parcoords.parallel_coordinates(df, params)
    (trace,) = fig.data
    labels = [d.label for d in trace.dimensions]
    assert "learning_rate" in labels and "early_stopping_patience" in labels
    assert not any("." in label for label in labels)  # the last part of each dotted key
    weights = trace.dimensions[labels.index("weights")]
    # A long value keeps its end (the file name) within the tick length.
    assert [len(t) for t in weights.ticktext] == [parcoords.TICK_CHARS_MAX] * 2
    assert all(t.startswith("…") and t.endswith(".h5") for t in weights.ticktext)
    # Margins hold the first axis's ticks (drawn at its left), the last label and the colour bar.
    margin = fig.layout.margin
    assert labels[0] == "weights" and margin.l >= 7 * parcoords.TICK_CHARS_MAX
    assert margin.r >= 72 + 4 * len("Best val accuracy")
    assert trace.labelangle == 0  # six axes: room enough for these labels side by side
    # Nine axes with long labels: the labels tilt and the top margin holds them.
    nine = parcoords.parallel_coordinates(df, [
        "train.early_stopping_patience", "train.learning_rate", "train.optimizer", "head.dense",
        "head.dropout", "image_size", "train.batch_size", "fine_tune.learning_rate"])
    assert len(nine.data[0].dimensions) == 9 and nine.data[0].labelangle == -20
    assert nine.layout.margin.t >= 96 + 3 * len("early_stopping_patience")
    assert nine.layout.height > fig.layout.height


def test_learning_curve_options_default_to_the_plain_figure():
    df = charts.metrics_frame(_metrics("a", "aaaaaaaaaaaa", [1, 1, 2]), {"aaaaaaaaaaaa": "a"})
    plain = charts.learning_curves(df, "loss")
    same = charts.learning_curves(df, "loss", log_y=False, smoothing=0.0, x="epoch",
                                  best_epochs=None)
    assert plain.to_dict() == same.to_dict()
    with pytest.raises(ValueError, match="x must be"):
        charts.learning_curves(df, x="steps")
    with pytest.raises(ValueError, match="smoothing must be between 0 and 0.99"):
        charts.learning_curves(df, smoothing=1.0)


def test_ema_is_tensorboards_debiased_average():
    raw = pd.Series([1.0, 0.0, float("nan"), 0.0])
    smooth = charts.ema(raw, 0.5)
    assert smooth.iloc[0] == pytest.approx(1.0)  # debiased: the first value as it is
    assert smooth.iloc[1] == pytest.approx(0.25 / 0.75)
    assert math.isnan(smooth.iloc[2])
    assert smooth.iloc[3] == pytest.approx(0.125 / 0.875)
    assert charts.ema(raw, 0.0) is raw


def test_smoothed_curves_keep_the_raw_curve_faint_behind():
    df = charts.metrics_frame(_metrics("a", "aaaaaaaaaaaa", [1, 1, 1, 1]), {"aaaaaaaaaaaa": "a"})
    fig = charts.learning_curves(df, "loss", smoothing=0.6, splits=["val"])
    raw, smooth = fig.data
    assert raw.opacity == charts.RAW_OPACITY and raw.showlegend is False
    assert list(raw.y) == list(df["val_loss"])
    assert smooth.name == "val" and smooth.y[0] == pytest.approx(df["val_loss"][0])
    assert smooth.y[-1] > df["val_loss"].iloc[-1]  # the average lags the falling loss


def test_log_axis_time_axis_and_best_epoch_star():
    rows = _metrics("a", "aaaaaaaaaaaa", [1, 1, 2, 2]) + _metrics("b", "bbbbbbbbbbbb", [1, 1])
    df = charts.metrics_frame(rows, {"aaaaaaaaaaaa": "a", "bbbbbbbbbbbb": "b"})
    fig = charts.learning_curves(df, "loss", log_y=True, x="time",
                                 best_epochs={"a": 3, "b": None})
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.title.text == "Loss (log)"
    assert fig.layout.xaxis.title.text == "Time since start (s)"
    # Epochs of 2 s each: times at the epochs' ends, the fine-tuning line after epoch 2.
    assert list(fig.data[0].x) == [2.0, 4.0, 6.0, 8.0]
    assert [s.x0 for s in fig.layout.shapes] == [4.0]
    star = fig.data[-1]
    assert star.marker.symbol == "star" and star.showlegend is False
    assert list(star.x) == [6.0] and star.y[0] == pytest.approx(1.1 / 3)
    assert sum(t.marker.symbol == "star" for t in fig.data) == 1  # b has no best epoch
    by_epoch = charts.learning_curves(df, "accuracy", best_epochs={"b": 2}, splits=["train"])
    assert list(by_epoch.data[-1].x) == [2] and by_epoch.data[-1].y[0] == pytest.approx(0.55)


def test_schedule_charts_draw_learning_rate_and_epoch_time_per_run():
    rows = _metrics("a", "aaaaaaaaaaaa", [1, 1, 2])
    rows[2]["learning_rate"], rows[2]["epoch_time"] = 1e-5, 5.0
    df = charts.metrics_frame(rows + _metrics("b", "bbbbbbbbbbbb", [1]),
                              {"aaaaaaaaaaaa": "a", "bbbbbbbbbbbb": "b"})
    lr = schedule.learning_rate_chart(df)
    assert [t.name for t in lr.data] == ["a", "b"] and list(lr.data[0].y) == [1e-3, 1e-3, 1e-5]
    assert lr.layout.yaxis.type == "log"
    times = schedule.epoch_time_chart(df, runs=["b", "a"], x="time")
    assert [t.name for t in times.data] == ["b", "a"]
    assert list(times.data[1].x) == [2.0, 4.0, 9.0] and list(times.data[1].y) == [2.0, 2.0, 5.0]
    none = schedule.learning_rate_chart(df.assign(learning_rate=float("nan")))
    assert none.data == () and "No learning rates" in none.layout.annotations[0].text
