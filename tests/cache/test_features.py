"""Frozen-feature cache: equivalence with the full model, hit/miss, invalidation, opt-outs."""

import keras
import numpy as np
import pytest

from tlcore import data as datasets_api
from tlcore.cache import features as featcache
from tlcore.cache import images as imagecache
from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.data import demo
from tlcore.engine import runmodel, train
from tlcore.engine.model import build_model, set_phase
from tlcore.errors import DiskFullError
from tlcore.store import COMPLETED, RunStore


@pytest.fixture
def dataset(ws, tmp_path):
    demo.write_class_folders(tmp_path / "src", ("a", "b"), per_class=8, size=40)
    datasets_api.import_dataset(tmp_path / "src", "tiny", ws=ws)
    return "tiny"


def _config(**overrides):
    base = {"dataset": "tiny", "image_size": 32, "base": {"weights": "none"},
            "head": {"dense": [8], "dropout": 0.0}, "train": {"epochs": 1, "batch_size": 8}}
    for key, value in overrides.items():
        base.setdefault(key, {}).update(value) if isinstance(value, dict) else base.update(
            {key: value})
    return RunConfig.from_dict(base)


def _model(config, seed=0):
    keras.utils.set_random_seed(seed)
    return build_model(config, 2, mixed_precision=False)


def _feature_entries(ws):
    return [e for e in cache.entries(ws) if e["kind"] == "features"]


@pytest.mark.parametrize("phase, blocks, cut", [(1, 0, "block5_pool"), (2, 1, "block4_pool"),
                                                 (2, 2, "block3_pool")])
def test_cached_path_predicts_like_the_full_model(ws, dataset, phase, blocks, cut):
    config = _config(fine_tune={"blocks": blocks, "epochs": 1})
    model = _model(config)
    set_phase(model, config, phase)
    data = train.load_data(config, ws)
    rest, inputs, got_cut = train.phase_inputs(model, config, phase, data, ws, ("val",))
    assert got_cut == cut
    features, labels = inputs["val"]
    images, image_labels = data.splits["val"]
    np.testing.assert_array_equal(labels, image_labels)
    full = model.predict(np.asarray(images, dtype=np.float32), verbose=0)
    cached = rest.predict(np.asarray(features), verbose=0)
    np.testing.assert_allclose(cached, full, atol=1e-4)


def test_only_trainable_layers_are_fitted(ws, dataset):
    config = _config(fine_tune={"blocks": 1, "epochs": 1})
    model = _model(config)
    data = train.load_data(config, ws)
    rest, _, _ = train.phase_inputs(model, config, 1, data, ws, ("train",))
    assert [layer.name for layer in rest.layers[1:]] == ["head"]
    set_phase(model, config, 2)
    rest2, _, _ = train.phase_inputs(model, config, 2, data, ws, ("train",))
    names = [layer.name for layer in rest2.layers[1:]]
    assert names[:4] == ["block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"]
    assert rest2.count_params() < model.count_params() / 2


def test_hit_then_invalidation_by_size_weights_and_cut(ws, dataset, monkeypatch):
    config = _config()
    model = _model(config)
    data = train.load_data(config, ws)
    train.phase_inputs(model, config, 1, data, ws, ("train",))
    assert len(_feature_entries(ws)) == 1
    calls = []
    real = featcache._build
    monkeypatch.setattr(featcache, "_build", lambda *a: calls.append(a) or real(*a))
    train.phase_inputs(model, config, 1, data, ws, ("train",))
    assert calls == []  # hit: the prefix did not run again

    other_weights = _model(config, seed=1)
    train.phase_inputs(other_weights, config, 1, data, ws, ("train",))
    assert len(calls) == 1

    bigger = _config(image_size=40)
    train.phase_inputs(_model(bigger), bigger, 1, train.load_data(bigger, ws), ws, ("train",))
    assert len(calls) == 2

    ft = _config(fine_tune={"blocks": 1, "epochs": 1})
    ft_model = _model(ft)
    set_phase(ft_model, ft, 2)
    train.phase_inputs(ft_model, ft, 2, data, ws, ("train",))
    assert len(calls) == 3
    assert len(_feature_entries(ws)) == 4


def test_dataset_change_misses(ws, dataset, tmp_path):
    demo.write_class_folders(tmp_path / "src2", ("a", "b"), per_class=8, size=40, seed=5)
    datasets_api.import_dataset(tmp_path / "src2", "tiny2", ws=ws)
    first, second = _config(), _config(dataset="tiny2")
    model = _model(first)
    train.phase_inputs(model, first, 1, train.load_data(first, ws), ws, ("train",))
    train.phase_inputs(model, second, 1, train.load_data(second, ws), ws, ("train",))
    datasets_seen = {e["meta"]["dataset"] for e in _feature_entries(ws)}
    assert datasets_seen == {"tiny", "tiny2"}


def test_augmentation_or_opt_out_disables_the_cache(ws, dataset, monkeypatch):
    augmented = _config(augment={"flip": "horizontal"})
    model = _model(augmented)
    assert train.frozen_cut(model, augmented, 1) is None
    data = train.load_data(augmented, ws)
    fit_model, inputs, cut = train.phase_inputs(model, augmented, 1, data, ws, ("train",))
    assert fit_model is model and cut is None and inputs["train"][0].shape[1:] == (32, 32, 3)
    plain = _config()
    monkeypatch.setenv(train.ENV_FEATURE_CACHE, "0")
    assert train.frozen_cut(_model(plain), plain, 1) is None
    assert _feature_entries(ws) == []


@pytest.mark.slow
def test_assembled_model_matches_the_cached_path(ws, dataset):
    config = _config(train={"epochs": 2, "batch_size": 8}, fine_tune={"blocks": 1, "epochs": 1})
    store = RunStore(ws)
    run_id = store.create_run(config)
    result = train.run_training(run_id, ws)
    store.update_run(run_id, status=COMPLETED)
    assert result["epochs"] == 3
    assert [r["phase"] for r in store.metrics(run_id)] == [1, 1, 2]
    # The run stores its trained layers only; the full model is assembled from its base,
    # written as a .keras file for download, and loads without tlcore (safe mode).
    assert not ws.run(run_id).model.exists()
    saved = keras.models.load_model(runmodel.model_file(run_id, ws), safe_mode=True)
    set_phase(saved, config, 2)
    data = train.load_data(config, ws)
    rest, inputs, cut = train.phase_inputs(saved, config, 2, data, ws, ("test",))
    assert cut == "block4_pool"
    images = np.asarray(data.splits["test"][0], dtype=np.float32)
    np.testing.assert_allclose(rest.predict(np.asarray(inputs["test"][0]), verbose=0),
                               saved.predict(images, verbose=0), atol=1e-4)
    np.testing.assert_allclose(runmodel.load_run_model(run_id, ws).predict(images, verbose=0),
                               saved.predict(images, verbose=0), atol=1e-6)


def test_eviction_keeps_the_entry_in_use(ws, dataset, monkeypatch):
    config = _config()
    data = train.load_data(config, ws)
    monkeypatch.setenv(cache.ENV_MAX_GB, "0.000001")  # 1 kB: everything else must go
    train.phase_inputs(_model(config), config, 1, data, ws, ("train",))
    train.phase_inputs(_model(config, seed=1), config, 1, data, ws, ("train",))
    entries = _feature_entries(ws)
    assert len(entries) == 1 and entries[0]["bytes"] > 1000


def test_feature_key_names_the_precision_the_prefix_computes_in(ws, dataset):
    config = _config()
    full = build_model(config, 2, mixed_precision=False)
    half = build_model(config, 2, mixed_precision=True)
    assert train.feature_key(full, "block5_pool") == "block5_pool@float32"
    assert train.feature_key(half, "block5_pool") == "block5_pool@mixed_float16"


def _mean_colour(batch):
    """A stand-in prefix without TensorFlow: one feature per channel."""
    return batch.astype(np.float32).mean(axis=(1, 2))


def test_chunks_shrink_with_image_size_and_report_progress(ws, dataset, monkeypatch):
    assert [featcache.chunk_images(s) for s in (32, 150, 224, 512)] == [256, 256, 114, 21]
    manifest = datasets_api.load_manifest(dataset, ws)
    monkeypatch.setattr(featcache, "CHUNK", 4)
    monkeypatch.setattr(featcache, "MIN_CHUNK", 1)
    calls = []
    feats, labels, hit = featcache.split_features(ws, manifest, "train", 32, _mean_colour,
                                                  "cut", "fp", lambda *p: calls.append(p))
    n = len(labels)
    assert not hit and feats.shape == (n, 3) and n > 8
    # Once before the first chunk (a stage can take long), then after every chunk.
    assert calls == [(0, n), *((min(i, n), n) for i in range(4, n + 4, 4))]


def test_a_full_disk_refuses_the_feature_build_and_leaves_no_temp_file(ws, dataset,
                                                                        monkeypatch):
    manifest = datasets_api.load_manifest(dataset, ws)
    imagecache.split_arrays(ws, manifest, "train", 32)
    monkeypatch.setenv("TLCORE_MIN_FREE_MB", "1e12")  # more than any disk has
    with pytest.raises(DiskFullError, match=r"^disk full: \d+ MB free in .*/cache/features/"):
        featcache.split_features(ws, manifest, "train", 32, _mean_colour, "cut", "fp")
    assert [p for p in (ws.cache_dir / "features").rglob("*") if p.is_file()] == []


def test_chunks_follow_the_measured_time_per_image(ws):
    # A chunk takes about CHUNK_SECONDS, in a power of two of images, within the size's cap.
    assert featcache.CHUNK_SECONDS == 2.0
    assert [featcache.next_chunk(150, s) for s in (1e-6, 0.03, 0.3, 5.0)] == [256, 64, 4, 1]
    assert featcache.next_chunk(224, 1e-6) == 114  # the cap at 224 px
    # Before anything is timed: few enough that a slow CPU reports within seconds.
    assert [featcache.probe_chunk(s) for s in (32, 150, 224, 512)] == [175, 8, 3, 1]


def test_a_slow_prefix_reports_progress_every_few_seconds(ws, tmp_path, monkeypatch):
    demo.write_class_folders(tmp_path / "many", ("a", "b"), per_class=40, size=40)
    datasets_api.import_dataset(tmp_path / "many", "many", ws=ws)
    manifest = datasets_api.load_manifest("many", ws)
    clock = [0.0]
    monkeypatch.setattr(featcache, "monotonic", lambda: clock[0])

    def slow_prefix(batch):  # a slow CPU at 150 px: 0.3 s per image
        clock[0] += 0.3 * len(batch)
        return _mean_colour(batch)

    calls = []
    feats, labels, _ = featcache.split_features(ws, manifest, "train", 150, slow_prefix, "cut",
                                                "fp", lambda *p: calls.append((clock[0], *p)))
    n = len(labels)
    assert feats.shape == (n, 3) and n > 40
    done = [d for _, d, _ in calls]
    assert done[:4] == [0, 8, 16, 20] and done[-1] == n  # two probes of 8, then 4 at a time
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:], strict=False)]
    assert max(gaps) <= 2.5 and max(gaps[2:]) <= featcache.CHUNK_SECONDS
