"""Review labels on the Data page (on a stored review) and fixes from Evaluate's mistakes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.pages.test_evaluate_page import stored_evaluation
from tests.support.evalutil import make_dataset, run_config
from tests.support.evalutil import make_run as add_eval_run
from tests.support.labels import colour_dataset
from tests.support.markup import shown
from tlcore import data
from tlcore.cache import reviews
from tlcore.data import jobs
from tlcore.results import label_review

DATA = "app_pages/data.py"
EVALUATE = "app_pages/evaluate.py"


def stored_review(ws, manifest: dict, size: int = 64) -> dict:
    """A review of `manifest` from its images' pixels at 8 px, stored as a random-init review.

    The first two images get the same features: a near-duplicate pair.
    """
    root = ws.dataset_dir(manifest["name"])
    features = np.array([np.asarray(Image.open(root / im["file"]).convert("RGB")
                                    .resize((8, 8)), float).ravel()
                         for im in manifest["images"]])
    features[1] = features[0]
    review = label_review.build_review(manifest, features)
    review.update(size=size, base="0" * 64, weights="none", created=time.time())
    reviews.save(ws, review, fingerprint=manifest["fingerprint"], size=size, base_fp="0" * 64,
                 source=reviews.RANDOM_INIT)
    return review


def _captions(at) -> list[str]:
    return [shown(c.value) for c in at.caption]


def test_the_review_grid_shows_the_suspicious_images_and_builds_one_edit(app, ws, monkeypatch,
                                                                        tmp_path):
    monkeypatch.delenv("TLCORE_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    manifest, swapped = colour_dataset(ws)
    review = stored_review(ws, manifest)
    assert {r["image_id"] for r in review["rows"] if r["suspect"]} == swapped
    at = app(DATA)
    assert not at.exception
    # ImageNet weights are not here: nothing is stored for them, so the review is offered,
    # with what to do without a download.
    assert at.button(key="review_start").label == "Review labels"
    assert any("No local ImageNet weights" in c for c in _captions(at))
    at.selectbox(key="review_weights").set_value("none").run()
    assert not at.exception and not [b for b in at.button if b.key == "review_start"]
    keys = {b.key for b in at.button_group if b.key.startswith("review_")}
    scope = manifest["fingerprint"][:12]
    assert keys == {f"review_{scope}_{i}" for i in swapped}
    assert all(b.value == "keep" for b in at.button_group if b.key in keys)
    captions = _captions(at)
    assert captions[captions.index(next(c for c in captions if c.startswith("4 suspect")))] == (
        f"4 suspect labels among 32 images, most suspicious first ({review['issues']} counted "
        "as label issues by cleanlab, the rest put in another class by the classifier; 64 px, "
        "Random init (a quick check) weights).")
    assert sum("→" in c and "sure" in c for c in captions) == 4
    assert any(c.startswith("blue → red · ") for c in captions)
    assert len(at.image) == 2 + 4  # a row of samples per class, then the 4 suspects
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Near-duplicates"] == "1" and metrics["Outliers"] == "0"
    files = [im["file"] for im in manifest["images"][:2]]
    assert [e.label for e in at.expander if e.label.startswith("Near")] == [
        "Near-duplicate groups (1)"]
    assert at.dataframe[-1].value["files"].tolist() == [", ".join(files)]
    apply = at.button(key="review_apply")
    assert apply.disabled and apply.label == "Apply: relabel 0, remove 0"

    first, second = sorted(keys)[:2]
    at.button_group(key=first).set_value("relabel").run()
    at.button_group(key=second).set_value("remove").run()
    apply = at.button(key="review_apply")
    assert not apply.disabled and apply.label == "Apply: relabel 1, remove 1"
    apply.click().run()
    assert not at.exception and not at.error
    assert "relabelled" in shown(at.success[0].value)
    after = data.load_manifest("colours", ws)
    assert after["fingerprint"] != manifest["fingerprint"]
    assert len(after["images"]) == len(manifest["images"]) - 1
    before = {im["sha256"][:16]: im for im in manifest["images"]}
    now = {im["sha256"][:16]: im for im in after["images"]}
    relabelled, removed = first.rsplit("_", 1)[1], second.rsplit("_", 1)[1]
    assert now[relabelled]["class"] != before[relabelled]["class"]
    assert removed not in now


@pytest.mark.slow
def test_review_labels_runs_in_the_background_and_shows_its_grid(app, ws, monkeypatch):
    colour_dataset(ws, per_class=8, flipped=1)
    at = app(DATA)
    at.selectbox(key="review_weights").set_value("none").run()
    at.selectbox(key="review_size").set_value(32).run()
    at.button(key="review_start").click().run()
    assert not at.exception and at.session_state["review_job"]["dataset"] == "colours"
    assert at.button(key="review_start").disabled
    deadline = time.monotonic() + 120
    while "review_job" in at.session_state:
        assert time.monotonic() < deadline
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error
    assert any(b.key.startswith("review_") for b in at.button_group)
    assert not list(ws.tmp_dir.glob("job-review-*"))


def test_a_failed_review_says_why_in_one_line(app, ws):
    colour_dataset(ws, per_class=6, flipped=0)
    job = ws.tmp_dir / "job-review-gone"
    job.mkdir(parents=True)
    (job / jobs.RESULT_FILE).write_text(
        '{"error": "ImageNet weights for VGG16 are not available locally."}')
    at = app()
    at.session_state["review_job"] = {"job": str(job), "dataset": "colours"}
    at.switch_page(DATA).run()  # the job's outcome, then the page drawn again with it
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [
        "ImageNet weights for VGG16 are not available locally."]
    assert not job.exists() and "review_job" not in at.session_state


def test_evaluate_mistakes_can_be_relabelled_to_the_prediction_or_removed(app, ws):
    make_dataset(ws, "shapes")
    run_id = add_eval_run(ws, run_config("shapes", "imagenet"), name="pretrained",
                          val_accuracy=[0.6, 0.8, 0.9], test_accuracy=0.85)
    evaluation = stored_evaluation(ws, run_id)
    wrong = evaluation["splits"]["test"]["mistakes"]
    at = app(EVALUATE)
    assert not at.exception
    keys = [f"eval_fix_{run_id}_test_{Path(w['file']).stem}" for w in wrong[:12]]
    assert [b.key for b in at.button_group if b.key.startswith("eval_fix_")] == keys
    captions = _captions(at)
    assert f"{Path(wrong[0]['file']).name}: {wrong[0]['true']} → {wrong[0]['predicted']}" \
        in captions
    assert at.button(key="eval_fix_apply").disabled
    at.button_group(key=keys[0]).set_value("relabel").run()
    apply = at.button(key="eval_fix_apply")
    assert not apply.disabled and apply.label == "Apply: relabel 1, remove 0"
