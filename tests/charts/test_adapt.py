"""The adaptation lab's chart: scores, and gains only when the target has labels."""

from tlcore.charts.adapt import GAIN_COLORS, methods_figure, methods_frame


def report(labeled: bool) -> dict:
    methods = [("none", "No adaptation", 0.60, 0.50), ("coral", "CORAL", 0.70, 0.62),
               ("tca", "<b>TCA</b>", 0.10, 0.30)]
    return {"target": "site-b", "scorer": "circular", "labeled": labeled, "chosen": "coral",
            "methods": [{"name": n, "label": label, "score": s,
                         "target_accuracy": a if labeled else None,
                         "gain": (a - 0.50) if labeled else None} for n, label, s, a in methods]}


def test_labeled_targets_show_scores_and_gains_with_the_choice_outlined():
    fig = methods_figure(report(labeled=True))
    scores, gains = fig.data
    assert list(scores.y) == [0.60, 0.70, 0.10]
    assert [round(g, 6) for g in gains.y] == [0.0, 12.0, -20.0]
    assert list(gains.marker.color) == [GAIN_COLORS[True], GAIN_COLORS[True], GAIN_COLORS[False]]
    assert list(scores.marker.line.width) == [0, 2.5, 0]
    assert "&lt;b&gt;TCA&lt;/b&gt;" in scores.x  # names show as typed
    assert "chosen: CORAL" in fig.layout.title.text


def test_unlabeled_targets_show_scores_only():
    fig = methods_figure(report(labeled=False))
    assert len(fig.data) == 1
    assert methods_frame(report(labeled=False))["chosen"].tolist() == [False, True, False]
