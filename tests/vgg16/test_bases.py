"""Light runs: each frozen base stored once, runs keep only what they trained."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from tests.support.evalutil import engine_model, make_dataset, make_run, run_config
from tlcore.cache import lru as cache
from tlcore.cli import main as cli_main
from tlcore.engine import runmodel, train
from tlcore.errors import NotFoundError
from tlcore.runs import launch
from tlcore.store import COMPLETED, RunStore
from tlcore.vgg16 import backbones, bases


def _conv_weights(seed: int) -> bases.LayerWeights:
    rng = np.random.default_rng(seed)
    return {name: [rng.standard_normal(k).astype(np.float32),
                   rng.standard_normal(b).astype(np.float32)]
            for name, (k, b) in backbones.conv_shapes().items()}


def test_layer_weights_round_trip_with_prefixes(tmp_path):
    path = tmp_path / "w.npz"
    weights = {"head_dense1": [np.ones((2, 3)), np.zeros(3)], "predictions": [np.eye(3)]}
    best = {"predictions": [np.full((3, 3), 7.0)]}
    bases.save_layer_weights(path, {f"last/{k}": v for k, v in weights.items()},
                             {"best/predictions/0": best["predictions"][0],
                              "optimizer/state/0": np.array(5)})
    last = bases.load_layer_weights(path, "last/")
    assert sorted(last) == ["head_dense1", "predictions"]
    np.testing.assert_array_equal(last["head_dense1"][0], np.ones((2, 3)))
    np.testing.assert_array_equal(bases.load_layer_weights(path, "best/")["predictions"][0],
                                  best["predictions"][0])
    assert bases.load_layer_weights(path)  == {}  # nothing at the top level
    assert int(bases.load_layer_weights(path, "optimizer/")["state"][0]) == 5


def test_a_base_is_stored_once_by_content(ws):
    weights = _conv_weights(0)
    fp = bases.store(ws, weights, "file: a.h5")
    assert bases.store(ws, _conv_weights(0), "file: copy-of-a.h5") == fp
    assert bases.store(ws, _conv_weights(1), "file: b.h5") != fp
    assert len([p for p in ws.bases_dir.iterdir() if p.is_dir()]) == 2
    loaded = bases.load(ws, fp)
    for name in backbones.CONV_LAYERS:
        for got, want in zip(loaded[name], weights[name], strict=True):
            np.testing.assert_array_equal(got, want)
    assert [p.name for p in ws.bases_dir.rglob("*tmp*")] == []
    with pytest.raises(NotFoundError, match="missing from .*train them again"):
        bases.load(ws, "0" * 64)


def test_a_weights_file_is_recognised_without_reading_it(ws, tmp_path):
    weights_file = tmp_path / "vgg.h5"
    weights_file.write_bytes(b"stand-in")
    config = run_config("d", weights=str(weights_file))
    key = bases.source_key(config, ws)
    fp = bases.store(ws, _conv_weights(0), "file")
    assert bases.lookup(ws, key) is None
    bases.remember(ws, key, fp)
    assert bases.lookup(ws, key) == fp
    os.utime(weights_file, (time.time() + 5, time.time() + 5))  # the file changed
    assert bases.lookup(ws, bases.source_key(config, ws)) is None
    assert bases.source_key(run_config("d"), ws) is None  # random init: no shortcut


@pytest.mark.slow
def test_runs_share_their_base_and_the_last_run_gone_frees_it(ws, capsys):
    make_dataset(ws, "shapes")
    store = RunStore(ws)
    ids = []
    for dense in (8, 16):  # two heads on the same seeded random base
        run_id = store.create_run(run_config("shapes", **{"head.dense": [dense],
                                                          "train.epochs": 1}))
        train.run_training(run_id, ws)
        store.update_run(run_id, status=COMPLETED)
        ids.append(run_id)
    fps = {bases.run_base(ws.run(run_id)) for run_id in ids}
    assert len(fps) == 1 and None not in fps
    fp = fps.pop()

    # A run's folder holds only what it trained: no conv layer of the frozen base.
    for run_id in ids:
        files = ws.run(run_id)
        trained = bases.load_layer_weights(files.trained)
        assert not any(name.startswith("block") for name in trained)
        assert sum(p.stat().st_size for p in files.dir.rglob("*") if p.is_file()) < 1e6
    listed = bases.listing(ws)
    assert [(b["fingerprint"], b["runs"]) for b in listed] == [(fp, sorted(ids))]

    assert cli_main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"base {fp[:12]}" in out and ", ".join(sorted(ids)) in out

    assembled = runmodel.model_file(ids[0], ws)  # a download, kept in the cache
    assert assembled.is_file() and assembled.is_relative_to(ws.cache_dir)
    launch.delete(ids[0], ws)
    assert not assembled.exists()  # deleting a run frees all of its space
    cache.clear(ws)
    assert bases.exists(ws, fp)  # still used by the other run
    launch.delete(ids[1], ws)
    assert cli_main(["cache", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bases"][0]["runs"] == []
    assert bases.collect(ws, grace_s=0) == (1, listed[0]["bytes"])
    assert not bases.exists(ws, fp) and bases.listing(ws) == []


def test_a_run_saved_before_light_runs_still_loads(ws):
    make_dataset(ws, "shapes")
    config = run_config("shapes")
    model = engine_model(config, 3)
    run_id = make_run(ws, config, model=model)
    (ws.run(run_id).class_names).write_text(json.dumps(["disc", "square", "triangle"]))
    loaded = runmodel.load_run_model(run_id, ws)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert runmodel.model_file(run_id, ws) == ws.run(run_id).model
