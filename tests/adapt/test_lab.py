"""The lab end to end on tiny colour domains: shift, every method, the adapted run."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore.adapt import adapted, methods
from tlcore.adapt.lab import adapt_run
from tlcore.errors import ConfigError, NotFoundError, RunStateError
from tlcore.store import COMPLETED, RunStore


def test_every_method_runs_and_is_scored_on_the_hidden_labels(lab, shifted):
    names = [m["name"] for m in shifted["methods"]]
    assert names == list(methods.METHODS)
    assert shifted["labeled"] and shifted["chosen"] in names
    none = shifted["methods"][0]
    assert none["gain"] == 0.0
    for m in shifted["methods"]:
        assert 0.0 <= m["target_accuracy"] <= 1.0
        assert m["gain"] == pytest.approx(m["target_accuracy"] - none["target_accuracy"])
        assert set(m["scores"]) == set(methods.SCORERS)
        assert m["score"] == m["scores"][methods.DEFAULT_SCORER]
    chosen = next(m for m in shifted["methods"] if m["name"] == shifted["chosen"])
    assert chosen["score"] == max(m["score"] for m in shifted["methods"]
                                  if m["score"] is not None)
    assert 0.0 <= shifted["source_model"]["target_accuracy"] <= 1.0


def test_shift_is_low_on_the_same_domain_and_high_on_a_shifted_one(lab, shifted):
    ws, run_id = lab
    same = adapt_run(run_id, "same", method_names=["none"], ws=ws)
    low, high = same["shift"]["overall"], shifted["shift"]["overall"]
    assert low["proxy_a_distance"] < 0.5 < 1.5 < high["proxy_a_distance"]
    assert high["mmd2"] > low["mmd2"] and high["mmd_p_value"] < 0.05
    assert same["shift"]["level"] == "similar" and shifted["shift"]["level"] == "strong"
    assert shifted["shift"]["reading"].startswith("Strong shift")
    assert [r["class"] for r in shifted["shift"]["per_class"]] == ["blue", "green", "red"]


def test_the_adapted_run_is_a_completed_run_with_its_report(lab, shifted):
    ws, run_id = lab
    row = RunStore(ws).get_run(shifted["run_id"])
    assert row["status"] == COMPLETED
    assert row["extra"]["adapted"]["source_run"] == run_id
    assert row["extra"]["adapted"]["method"] == shifted["chosen"]
    assert row["config"]["head"]["pooling"] == "avg" and row["config"]["head"]["dense"] == []
    assert adapted.load_report(shifted["run_id"], ws)["methods"] == shifted["methods"]
    assert shifted["run_id"] in [r["run_id"] for r in adapted.adapted_runs(ws)]


def test_the_keras_model_predicts_what_the_pipeline_predicts(lab, shifted):
    from tlcore.adapt.features import domain_features
    from tlcore.cache.images import split_arrays
    from tlcore.data import SPLITS, load_manifest
    from tlcore.engine.feed import predict_probs
    from tlcore.engine.openrun import open_run
    from tlcore.engine.runmodel import run_model

    ws, run_id = lab
    source = open_run(run_id, ws)
    src, tgt = domain_features(source, [load_manifest(n, ws) for n in ("colours", "inverted")])
    rows = src.splits != "test"
    fitted = methods.fit_methods([shifted["chosen"]], src.pooled[rows], src.labels[rows],
                                 tgt.pooled, 3)[0]
    manifest = load_manifest("inverted", ws)
    images = np.concatenate([np.asarray(split_arrays(ws, manifest, s, 32)[0]) for s in SPLITS])
    keras_probs = predict_probs(run_model(open_run(shifted["run_id"], ws)), images)
    assert keras_probs.shape == (48, 3)
    np.testing.assert_allclose(keras_probs, fitted.predict_proba(tgt.pooled), atol=1e-4)
    assert np.mean(keras_probs.argmax(axis=1) == tgt.labels) == pytest.approx(
        next(m for m in shifted["methods"] if m["name"] == shifted["chosen"])["target_accuracy"])


def test_unlabeled_target_has_no_accuracies(lab):
    ws, run_id = lab
    report = adapt_run(run_id, "unlabeled", method_names=["coral"], ws=ws)
    assert not report["labeled"]
    assert [m["name"] for m in report["methods"]] == ["none", "coral"]
    assert all(m["target_accuracy"] is None and m["gain"] is None for m in report["methods"])
    assert report["source_model"]["target_accuracy"] is None


def test_bad_requests_are_refused_in_one_line(lab):
    ws, run_id = lab
    with pytest.raises(ConfigError, match="Unknown adaptation method 'jdot'"):
        adapt_run(run_id, "inverted", method_names=["jdot"], ws=ws)
    with pytest.raises(NotFoundError):
        adapt_run(run_id, "nope", ws=ws)
    with pytest.raises(NotFoundError):
        adapt_run("0123456789ab", "inverted", ws=ws)
    queued = RunStore(ws).create_run(RunStore(ws).get_config(run_id))
    with pytest.raises(RunStateError, match="not completed"):
        adapt_run(queued, "inverted", ws=ws)
    RunStore(ws).delete_run(queued)


def test_the_adapted_run_is_evaluated_and_exports_like_any_run(lab, shifted, tmp_path):
    import zipfile

    from tlcore.results.evaluate import evaluate_run, list_evaluations
    from tlcore.results.export import export_run

    ws, _ = lab
    run_id = shifted["run_id"]
    assert list_evaluations(run_id, ws) == ["colours", "inverted"]  # stored on creation
    again = evaluate_run(run_id, ws=ws, dataset="inverted", gradcam_per_split=1)
    assert again["domain_shift"] and again["splits"]["test"]["n"] == 6
    out = export_run(run_id, "keras", tmp_path / "model.zip", ws=ws)
    with zipfile.ZipFile(out) as zf:
        assert {"model.keras", "class_names.json", "config.json"} <= set(zf.namelist())
