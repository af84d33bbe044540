"""The inference service: a real `python -m tlcore.workers.infer` answering over its port."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

import numpy as np
import pytest
from PIL import Image

from tests.support.evalutil import engine_model, make_dataset, make_run, run_config
from tests.support.runs import wait_for
from tlcore import processes
from tlcore.errors import TLCoreError
from tlcore.runs import children, inference, warm


@pytest.fixture
def service_on(monkeypatch, ws):
    monkeypatch.setenv("TLCORE_INFER_SERVICE", "1")
    yield
    inference.stop_service(ws)


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buf, format="PNG")
    return buf.getvalue()


def _completed_run(ws) -> str:
    make_dataset(ws, "shapes")
    config = run_config("shapes")
    return make_run(ws, config, model=engine_model(config, 3))


def test_the_service_predicts_like_the_cli_and_answers_again_without_a_new_process(
        ws, service_on):
    run_id = _completed_run(ws)
    images = [_png((200, 30, 30)), _png((20, 20, 220))]
    first = inference.request(ws, "predict", run_id=run_id, images=images, k=2, gradcam=True)
    pid = inference.service_pid(ws)
    assert pid is not None and inference.is_service(pid)
    assert oct(inference.info_file(ws).stat().st_mode & 0o777) == "0o600"

    staged = []
    for i, data in enumerate(images):
        path = ws.root / f"p{i}.png"
        path.write_bytes(data)
        staged.append(str(path))
    cli = subprocess.run([sys.executable, "-m", "tlcore", "predict", run_id, *staged, "--json",
                          "--top-k", "2"], capture_output=True, text=True,
                         env=children.worker_env(ws), check=True)
    expected = json.loads(cli.stdout)
    for got, want in zip(first, expected, strict=True):
        assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]]
        np.testing.assert_allclose([t["probability"] for t in got["top"]],
                                   [t["probability"] for t in want["top"]], atol=1e-5)
        overlay = Image.open(io.BytesIO(got["overlay_png"]))
        assert overlay.size == (32, 32)

    again = inference.request(ws, "predict", run_id=run_id, images=images[:1], k=1,
                              gradcam=False)
    assert inference.service_pid(ws) == pid  # the same process answered
    assert again[0]["top"][0]["class"] == first[0]["top"][0]["class"]
    assert "overlay_png" not in again[0]


def test_a_refused_request_gives_its_message_and_the_service_stays_up(ws, service_on):
    run_id = _completed_run(ws)
    with pytest.raises(TLCoreError, match="No run"):
        inference.request(ws, "predict", run_id="0" * 12, images=[_png((1, 2, 3))], k=1,
                          gradcam=False)
    with pytest.raises(TLCoreError, match="Cannot read uploaded image"):
        inference.request(ws, "predict", run_id=run_id, images=[b"not an image"], k=1,
                          gradcam=False)
    info = json.loads(inference.info_file(ws).read_text())
    with pytest.raises(AuthenticationError):
        Client(("127.0.0.1", info["port"]), authkey=b"wrong key")
    out = ws.root / "model.zip"
    result = inference.request(ws, "export", run_id=run_id, fmt="keras", out=str(out))
    assert result["path"] == str(out)
    assert "model.keras" in zipfile.ZipFile(out).namelist()
    assert inference.service_pid(ws) == info["pid"]


def test_the_service_leaves_when_its_owner_is_gone(ws, monkeypatch):
    monkeypatch.setenv("TLCORE_INFER_SERVICE", "1")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        env = {**children.worker_env(ws), "CUDA_VISIBLE_DEVICES": "",
               warm.ENV_WARM_OWNER: str(owner.pid)}
        ws.workers_dir.mkdir(parents=True, exist_ok=True)
        pid = children.start([inference.MODULE], inference.log_file(ws), env)
        wait_for(lambda: inference.info_file(ws).exists(), "the service to listen", 120)
    finally:
        owner.kill()
        owner.wait()
    wait_for(lambda: not processes.alive(pid) or children.ended(pid), "the service to leave", 30)
    assert not inference.info_file(ws).exists()


def test_a_turned_off_service_is_not_started(ws):
    assert os.environ["TLCORE_INFER_SERVICE"] == "0"
    assert inference.ensure_service(ws) is None
    with pytest.raises(inference.ServiceUnavailable):
        inference.request(ws, "predict", run_id="x", images=[], k=1, gradcam=False)
    assert not ws.workers_dir.exists() or not any(ws.workers_dir.iterdir())
