"""Evaluation: metrics against hand-computed values, stored evaluations, domain shift."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.support.evalutil import (
    CLASSES,
    engine_model,
    make_dataset,
    make_run,
    run_config,
    write_keras_zip,
)
from tlcore.engine.kerasfile import load_keras_file
from tlcore.engine.openrun import class_mapping
from tlcore.errors import DatasetError, NotFoundError, RunStateError, WeightsError
from tlcore.results.evaluate import (
    classification_metrics,
    evaluate_run,
    gradcam_path,
    list_evaluations,
    load_evaluation,
    mistakes,
    roc_auc,
)
from tlcore.store import RUNNING

# Seven examples, three classes. Rows: true label, probabilities of a, b, c.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
PROBS = np.array([
    [0.70, 0.20, 0.10],  # a -> a
    [0.30, 0.60, 0.10],  # a -> b (a second)
    [0.15, 0.80, 0.05],  # b -> b
    [0.50, 0.40, 0.10],  # b -> a (b second)
    [0.20, 0.10, 0.70],  # c -> c
    [0.25, 0.35, 0.40],  # c -> c
    [0.10, 0.10, 0.80],  # c -> c
])
NAMES = ["a", "b", "c"]


def test_metrics_match_hand_computed_values():
    m = classification_metrics(Y_TRUE, PROBS, NAMES, k=2)
    assert m["n"] == 7
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["top_k"] == 2 and m["top_k_accuracy"] == pytest.approx(1.0)
    assert m["confusion"]["counts"] == [[1, 1, 0], [1, 1, 0], [0, 0, 3]]
    assert m["confusion"]["normalized"] == [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    rows = {r["class"]: r for r in m["per_class"]}
    # a: TP 1, FP 1 (the b predicted a), FN 1.  b: the same.  c: all 3 right, none wrong.
    for name, (p, r, f1, support) in {"a": (0.5, 0.5, 0.5, 2), "b": (0.5, 0.5, 0.5, 2),
                                      "c": (1.0, 1.0, 1.0, 3)}.items():
        assert rows[name]["precision"] == pytest.approx(p)
        assert rows[name]["recall"] == pytest.approx(r)
        assert rows[name]["f1"] == pytest.approx(f1)
        assert rows[name]["support"] == support
    assert m["macro"]["f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert m["weighted"]["f1"] == pytest.approx((2 * 0.5 + 2 * 0.5 + 3 * 1.0) / 7)
    assert m["weighted"]["precision"] == pytest.approx(5 / 7)
    # One-vs-rest AUC by counting pairs: a's positives (0.7, 0.3) against its five
    # negatives (0.15, 0.5, 0.2, 0.25, 0.1) win 5 + 4 of 10 pairs; b likewise; c all.
    assert rows["a"]["auc"] == pytest.approx(0.9)
    assert rows["b"]["auc"] == pytest.approx(0.9)
    assert rows["c"]["auc"] == pytest.approx(1.0)
    assert m["macro"]["auc"] == pytest.approx(2.8 / 3)
    assert m["notes"] == []
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere


def test_top1_equals_accuracy_and_k_is_capped():
    m = classification_metrics(Y_TRUE, PROBS, NAMES, k=10)
    assert m["top_k"] == 3 and m["top_k_accuracy"] == 1.0
    m1 = classification_metrics(Y_TRUE, PROBS, NAMES, k=1)
    assert m1["top_k_accuracy"] == pytest.approx(m1["accuracy"])


def test_roc_auc_counts_ties_as_half():
    assert roc_auc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    # Pairs: (0.8, 0.8) tie 0.5, (0.8, 0.1) 1, (0.3, 0.8) 0, (0.3, 0.1) 1 -> 2.5 / 4.
    pos = np.array([True, False, True, False])
    assert roc_auc(pos, np.array([0.8, 0.8, 0.3, 0.1])) == pytest.approx(0.625)
    assert math.isnan(roc_auc(np.array([True, True]), np.array([0.1, 0.2])))


def test_absent_class_is_undefined_not_zero():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, probs, NAMES)
    c = m["per_class"][2]
    # c never occurs but is predicted once: precision 0, recall and AUC undefined.
    assert c["support"] == 0 and c["precision"] == 0.0 and c["f1"] == 0.0
    assert c["recall"] is None and c["auc"] is None
    assert m["confusion"]["normalized"][2] == [None, None, None]
    assert any(n.startswith("No examples of c:") for n in m["notes"])
    # Macro averages over the classes that occur: a (P 1, R 0.5) and b (P 1, R 1);
    # c's precision of 0 would pull the mean down to 2/3 if it counted.
    assert m["macro"]["recall"] == pytest.approx(0.75)
    assert m["macro"]["precision"] == pytest.approx(1.0)
    json.dumps(m, allow_nan=False)


def test_never_predicted_class_has_zero_precision():
    y = np.array([0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    m = classification_metrics(y, probs, ["a", "b"])
    b = m["per_class"][1]
    assert b["precision"] == 0.0 and b["recall"] == 0.0 and b["f1"] == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(Y_TRUE, PROBS[:, :2], NAMES)
    with pytest.raises(ValueError, match="Labels"):
        classification_metrics(np.array([3]), np.array([[0.2, 0.3, 0.5]]), NAMES)


def test_mistakes_most_confident_first():
    wrong = mistakes(Y_TRUE, PROBS, NAMES, [f"f{i}.png" for i in range(7)])
    assert [(w["index"], w["true"], w["predicted"]) for w in wrong] == [(1, "a", "b"),
                                                                        (3, "b", "a")]
    assert wrong[0]["confidence"] == pytest.approx(0.6)
    assert wrong[0]["true_probability"] == pytest.approx(0.3)
    assert wrong[0]["file"] == "f1.png"


def test_class_mapping_by_name_and_mismatch_message():
    assert class_mapping(["a", "b", "c"], ["c", "a", "b"], "d").tolist() == [2, 0, 1]
    with pytest.raises(DatasetError, match=r"missing 'c'; extra 'x'"):
        class_mapping(["a", "b", "c"], ["a", "b", "x"], "other")


# ---- runs ---------------------------------------------------------------------
@pytest.fixture
def dataset(ws):
    make_dataset(ws, "shapes")
    return "shapes"


def test_evaluate_run_stores_metrics_mistakes_and_gradcam(ws, dataset):
    config = run_config(dataset)
    run_id = make_run(ws, config, model=engine_model(config, len(CLASSES)))
    assert load_evaluation(run_id, ws=ws) is None

    ev = evaluate_run(run_id, ws=ws, gradcam_per_split=2)
    assert ev["dataset"] == "shapes" and not ev["domain_shift"]
    assert ev["classes"] == list(CLASSES)
    assert set(ev["splits"]) == {"test", "val"}
    for split in ("test", "val"):
        m = ev["splits"][split]
        s = m["samples"]
        assert m["n"] == len(s["file"]) == 6  # 2 of 8 images per class in each split
        assert sum(map(sum, m["confusion"]["counts"])) == m["n"]
        right = np.mean(np.array(s["true"]) == np.array(s["predicted"]))
        assert m["accuracy"] == pytest.approx(right)
        conf = [w["confidence"] for w in m["mistakes"]]
        assert conf == sorted(conf, reverse=True)
        assert len(m["mistakes"]) == m["n"] - round(right * m["n"])
        for w in m["mistakes"][:2]:
            assert gradcam_path(run_id, w, ws=ws) is not None
        for w in m["mistakes"][2:]:
            assert "gradcam" not in w
    stored = load_evaluation(run_id, ws=ws)
    assert stored == json.loads(json.dumps(ev))
    assert list_evaluations(run_id, ws=ws) == ["shapes"]

    # A second evaluation replaces the overlays of the first.
    evaluate_run(run_id, ws=ws, splits=("test",), gradcam_per_split=1)
    cam_root = ws.run(run_id).dir / "eval" / "gradcam" / "shapes"
    assert len(list(cam_root.iterdir())) == 1


def test_evaluate_on_another_dataset_with_same_classes(ws, dataset):
    make_dataset(ws, "shapes-b", classes=tuple(reversed(CLASSES)), seed=5)
    config = run_config(dataset)
    run_id = make_run(ws, config, model=engine_model(config, len(CLASSES)))
    ev = evaluate_run(run_id, ws=ws, dataset="shapes-b", splits=("test",),
                      gradcam_per_split=0)
    assert ev["domain_shift"] and ev["trained_on"] == "shapes"
    assert load_evaluation(run_id, dataset="shapes-b", ws=ws)["dataset"] == "shapes-b"
    assert load_evaluation(run_id, ws=ws) is None


def test_domain_shift_class_mismatch_names_the_classes(ws, dataset):
    make_dataset(ws, "pets", classes=("disc", "ring"))
    run_id = make_run(ws, run_config(dataset))
    write_keras_zip(ws.run(run_id).model)  # never loaded
    with pytest.raises(DatasetError) as info:
        evaluate_run(run_id, ws=ws, dataset="pets")
    message = str(info.value)
    assert "missing 'square', 'triangle'" in message and "extra 'ring'" in message


def test_a_truncated_model_file_is_reported_as_unreadable(ws, tmp_path):
    path = write_keras_zip(tmp_path / "model.keras", truncated=True)
    with pytest.raises(WeightsError, match=r"model.keras is unreadable \(truncated or corrupt\)"):
        load_keras_file(path)
    with pytest.raises(NotFoundError, match="No model file"):
        load_keras_file(tmp_path / "missing.keras")


def test_unfinished_run_is_refused(ws, dataset):
    run_id = make_run(ws, run_config(dataset), status=RUNNING)
    with pytest.raises(RunStateError, match="running, not completed; wait"):
        evaluate_run(run_id, ws=ws)


def test_worker_can_evaluate_its_running_run_with_the_model_in_memory(ws, dataset):
    config = run_config(dataset)
    model = engine_model(config, len(CLASSES))
    run_id = make_run(ws, config, status=RUNNING)  # no model.keras on disk yet
    ev = evaluate_run(run_id, ws=ws, model=model, require_completed=False, splits=("test",),
                      gradcam_per_split=1)
    assert ev["splits"]["test"]["n"] == 6
    assert load_evaluation(run_id, ws=ws)["run_id"] == run_id
