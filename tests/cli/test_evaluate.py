"""`evaluate`, `predict`, `export` and `transfer-report` from the command line."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.support.evalutil import (
    CLASSES,
    engine_model,
    make_dataset,
    make_run,
    run_config,
    write_keras_zip,
)
from tlcore.cli import main
from tlcore.errors import DatasetError
from tlcore.results.predict import predict_images
from tlcore.store import RUNNING

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(ws):
    make_dataset(ws, "shapes")
    config = run_config("shapes")
    return make_run(ws, config, model=engine_model(config, len(CLASSES)),
                    val_accuracy=[0.4, 0.5], test_accuracy=0.5)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_evaluate_text_and_json(ws, run, capsys):
    assert main(["evaluate", run]) == 0
    out = capsys.readouterr().out
    assert f"run {run} on dataset shapes" in out and "test  n=6" in out and "top-3" in out
    assert main(["evaluate", run, "--json", "--top-k", "2"]) == 0
    ev = _json(capsys)
    assert ev["splits"]["test"]["top_k"] == 2
    assert (ws.run(run).dir / "eval" / "shapes.json").is_file()


def test_predict_matches_the_evaluation_and_returns_gradcam(ws, run, capsys):
    main(["evaluate", run, "--json"])
    samples = _json(capsys)["splits"]["test"]["samples"]
    files = [str(ws.dataset_dir("shapes") / f) for f in samples["file"][:3]]
    assert main(["predict", run, *files, "--json", "--gradcam", "--top-k", "2"]) == 0
    got = _json(capsys)
    assert [g["source"] for g in got] == files
    for item, pred, conf in zip(got, samples["predicted"], samples["confidence"], strict=False):
        assert len(item["top"]) == 2 and item["top"][0]["index"] == pred
        assert item["top"][0]["class"] == CLASSES[pred]
        assert item["top"][0]["probability"] == pytest.approx(conf, abs=1e-5)
        png = Image.open(io.BytesIO(base64.b64decode(item["overlay_png_base64"])))
        assert png.size == (32, 32)
    assert main(["predict", run, files[0]]) == 0
    assert capsys.readouterr().out.startswith(f"{files[0]}: {got[0]['top'][0]['class']} ")
    # Encoded bytes are decoded the same way as files.
    (from_bytes,) = predict_images(run, [Path(files[0]).read_bytes()], ws=ws)
    assert from_bytes["top"][0]["probability"] == pytest.approx(got[0]["top"][0]["probability"])


def test_predict_unreadable_image_is_one_line_error(ws, run, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["predict", run, str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: Cannot read {bad} as an image") and "\n" not in err
    with pytest.raises(DatasetError, match="No image file"):
        predict_images(run, [tmp_path / "missing.png"], ws=ws)


def test_export_prints_the_zip(ws, run, tmp_path, capsys):
    assert main(["export", run, "--format", "keras", "--out", str(tmp_path / "m.zip")]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "m.zip"
    assert "model.keras" in zipfile.ZipFile(path).namelist()


def test_transfer_report_text_and_json(ws, capsys):
    pre = make_run(ws, run_config("shapes", "imagenet"), val_accuracy=[0.3, 0.5],
                   test_accuracy=0.50)
    base = make_run(ws, run_config("shapes", **{"base.trainable": True}),
                    val_accuracy=[0.6, 0.7], test_accuracy=0.70)
    assert main(["transfer-report", pre, base]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NEGATIVE TRANSFER: ") and "test_accuracy" in out
    assert ("compared: ImageNet-pretrained (frozen base, head trained) vs trained from scratch "
            "(every layer, random init)") in out
    assert main(["transfer-report", pre, base, "--json"]) == 0
    assert _json(capsys)["verdict"] == "negative transfer"


def test_unfinished_run_says_to_wait(ws, capsys):
    run_id = make_run(ws, run_config("shapes"), status=RUNNING)
    for argv in (["evaluate", run_id], ["predict", run_id, "x.png"],
                 ["export", run_id, "--format", "tflite", "--out", "x.zip"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"error: Run {run_id} is running, not completed; wait for it to finish, "
                       "or train it again if it failed."), argv


def test_a_truncated_model_is_unreadable_not_missing(ws, capsys):
    run_id = make_run(ws, run_config("shapes"))
    write_keras_zip(ws.run(run_id).model, truncated=True)
    for argv in (["evaluate", run_id], ["predict", run_id, "x.png"],
                 ["export", run_id, "--format", "keras", "--out", "x.zip"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: runs/{run_id}/model.keras is unreadable (truncated or "
                              "corrupt): "), argv
        assert err.endswith("; train the run again.") and len(err.splitlines()) == 1


def test_cli_parser_and_transfer_report_do_not_import_tensorflow(ws):
    script = ("import sys\nfrom tlcore.cli import build_parser\nbuild_parser()\n"
              "import tlcore.results.transfer, tlcore.results.evaluate, tlcore.charts.evaluation, "
              "tlcore.results.export\n"
              "print('tensorflow' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_transfer_report_names_unequal_budgets(ws, capsys):
    pre = make_run(ws, run_config("shapes", "imagenet", **{"train.epochs": 10}),
                   val_accuracy=[0.8], test_accuracy=0.90)
    base = make_run(ws, run_config("shapes", **{"base.trainable": True, "train.epochs": 3,
                                                "train.learning_rate": 0.0001}),
                    val_accuracy=[0.5], test_accuracy=0.60)
    assert main(["transfer-report", pre, base]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "POSITIVE TRANSFER: Starting from ImageNet raised test accuracy by 30.0 points over "
        "training from scratch. Unequal training budgets: pretrained 10 epochs, baseline 3 "
        "epochs. The baseline trained for fewer epochs, which favours the pretrained run. The "
        "runs also differ in train.learning_rate (0.001 vs 0.0001).")
    assert "  budget: pretrained 10 epochs, baseline 3 epochs (unequal)" in out
    assert "  differs: train.learning_rate: pretrained 0.001, baseline 0.0001" in out
    assert main(["transfer-report", pre, base, "--json"]) == 0
    report = _json(capsys)
    assert report["budget"] == {"pretrained": "10 epochs", "baseline": "3 epochs",
                                "equal": False}
    assert [d["setting"] for d in report["differences"]] == ["training budget",
                                                             "train.learning_rate"]
    assert "Unequal training budgets" in report["summary"]
