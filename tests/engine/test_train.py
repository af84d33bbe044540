"""The training loop in-process: two phases on one epoch axis, artefacts, cancel and resume,
early stopping, class weights and the input pipeline."""

from __future__ import annotations

import csv
import errno
import json
import math
import re

import keras
import numpy as np
import pytest

from tlcore import data as datasets_api
from tlcore import entities
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.engine import fastfit, runmodel, train
from tlcore.engine.model import build_model
from tlcore.engine.train import callbacks, loop
from tlcore.errors import DiskFullError, DivergedError, NotFoundError, RunCancelled
from tlcore.store import RunStore
from tlcore.vgg16 import bases
from tlcore.workers import run as worker

CLASSES = ("disc", "square", "triangle")


@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", CLASSES, per_class=10, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"


def _config(dataset: str, **data) -> RunConfig:
    base = {"dataset": dataset, "image_size": 32, "base": {"weights": "none"},
            "head": {"dense": [8], "dropout": 0.0},
            "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": 0}}
    for key, value in data.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return RunConfig.from_dict(base)


def _epochs(store: RunStore, run_id: str) -> list[tuple[int, int]]:
    return [(m["epoch"], m["phase"]) for m in store.metrics(run_id)]


@pytest.mark.slow
def test_two_phases_on_one_epoch_axis(ws, dataset):
    store = RunStore(ws)
    config = _config(dataset, fine_tune={"blocks": 1, "epochs": 2, "learning_rate": 1e-4})
    run_id = store.create_run(config)
    result = train.run_training(run_id, ws)

    metrics = store.metrics(run_id)
    assert _epochs(store, run_id) == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert [m["learning_rate"] for m in metrics] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    assert all(m["epoch_time"] > 0 and m["val_loss"] is not None for m in metrics)

    run_dir = ws.run(run_id).dir
    with open(run_dir / "history.csv") as fh:
        history = list(csv.DictReader(fh))
    assert [(int(h["epoch"]), int(h["phase"])) for h in history] == _epochs(store, run_id)

    run = store.get_run(run_id)
    best = min(metrics, key=lambda m: m["val_loss"])
    assert run["best_epoch"] == best["epoch"] == result["best_epoch"]
    assert run["best_val_loss"] == pytest.approx(best["val_loss"])
    assert run["best_val_accuracy"] == pytest.approx(max(m["val_accuracy"] for m in metrics))
    assert run["device"] == "CPU"
    assert run["extra"]["mixed_precision"] is False
    assert run["extra"]["weights_source"] == "random init (seed 0)"

    test = run["test_metrics"]
    assert test == json.loads((run_dir / "test_metrics.json").read_text())
    assert test["n"] == 3 and 0.0 <= test["accuracy"] <= 1.0 and test["loss"] > 0

    progress = store.progress(run_id)
    assert (progress["epoch"], progress["epochs"], progress["phase"]) == (4, 4, 2)
    assert progress["batch"] == progress["batches"] == math.ceil(21 / 8)

    # The run keeps what it trained (the head and block 5), not the frozen base; the
    # checkpoint is gone once the trained weights are written.
    trained = bases.load_layer_weights(ws.run(run_id).trained)
    assert "predictions" in trained and "block5_conv1" in trained
    assert not any(name.startswith(("block1", "block4")) for name in trained)
    assert not (run_dir / "checkpoint").exists() and not (run_dir / "model.keras").exists()
    assert bases.exists(ws, bases.run_base(ws.run(run_id)))
    model = runmodel.load_run_model(run_id, ws, require_completed=False)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, len(CLASSES))


@pytest.mark.slow
def test_cancel_in_phase_two_then_resume(ws, dataset, monkeypatch):
    store = RunStore(ws)
    config = _config(dataset, train={"epochs": 2},
                     fine_tune={"blocks": 1, "epochs": 2, "learning_rate": 1e-4})
    run_id = store.create_run(config)
    original = train.RunRecorder.on_epoch_end

    def cancel_after_epoch_3(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == 3:
            self.store.request_cancel(self.run_id)

    monkeypatch.setattr(train.RunRecorder, "on_epoch_end", cancel_after_epoch_3)
    with pytest.raises(RunCancelled):
        train.run_training(run_id, ws)
    assert _epochs(store, run_id) == [(1, 1), (2, 1), (3, 2)]
    assert store.get_run(run_id)["test_metrics"] is None
    first = store.metrics(run_id)

    monkeypatch.setattr(train.RunRecorder, "on_epoch_end", original)
    store.update_run(run_id, cancel_requested=0)
    train.run_training(run_id, ws, resume=True)
    assert _epochs(store, run_id) == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert store.metrics(run_id)[:3] == first  # finished epochs are kept, not re-run
    assert store.get_run(run_id)["test_metrics"]["n"] == 3


@pytest.mark.slow
def test_resume_continues_the_optimizer_instead_of_restarting_it(ws, dataset, monkeypatch):
    monkeypatch.setenv(train.ENV_CHECKPOINT_INTERVAL, "0")
    store = RunStore(ws)
    run_id = store.create_run(_config(dataset, train={"epochs": 4}))
    original = train.RunRecorder.on_epoch_end

    def cancel_after_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == 2:
            self.store.request_cancel(self.run_id)

    monkeypatch.setattr(train.RunRecorder, "on_epoch_end", cancel_after_epoch_2)
    with pytest.raises(RunCancelled):
        train.run_training(run_id, ws)
    files = ws.run(run_id)
    saved = train.load_checkpoint(files)
    steps = math.ceil(21 / 8)
    iterations = [v for v in saved.optimizer if v.shape == ()]
    assert int(iterations[0]) == 2 * steps  # Adam's step count after two epochs
    assert any(v.ndim and np.abs(v).sum() > 0 for v in saved.optimizer)  # and its moments

    restored, after_fit = [], []
    real_restore, real_fit = loop.restore_optimizer, fastfit.fit_in_memory

    def restore(model, values):
        ok = real_restore(model, values)
        restored.append((ok, [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]))
        return ok

    def fit(model, *args, **kwargs):  # the head trains on cached features in memory
        real_fit(model, *args, **kwargs)
        after_fit.append(int(keras.ops.convert_to_numpy(model.optimizer.iterations)))

    monkeypatch.setattr(train.RunRecorder, "on_epoch_end", original)
    monkeypatch.setattr(loop, "restore_optimizer", restore)
    monkeypatch.setattr(fastfit, "fit_in_memory", fit)
    store.update_run(run_id, cancel_requested=0)
    train.run_training(run_id, ws, resume=True)
    assert len(restored) == 1 and restored[0][0] is True
    for got, want in zip(restored[0][1], saved.optimizer, strict=True):
        np.testing.assert_array_equal(got, want)  # moments and step count as checkpointed
    assert after_fit == [4 * steps]  # a fresh optimizer would stand at 2 * steps
    assert _epochs(store, run_id) == [(1, 1), (2, 1), (3, 1), (4, 1)]


@pytest.mark.slow
def test_phase_two_follows_an_early_stopped_phase_one(ws, dataset, monkeypatch):
    store = RunStore(ws)
    config = _config(dataset, train={"epochs": 4, "early_stopping_patience": 1},
                     fine_tune={"blocks": 2, "epochs": 1})
    run_id = store.create_run(config)
    original = train.RunRecorder.on_epoch_end

    def stop_in_phase_one(self, epoch, logs=None):
        if self.phase == 1 and epoch == 1:
            self.state.wait = self.config.train.early_stopping_patience  # as if no improvement
            self.state.best_monitor = -math.inf
        original(self, epoch, logs)

    monkeypatch.setattr(train.RunRecorder, "on_epoch_end", stop_in_phase_one)
    train.run_training(run_id, ws)
    assert _epochs(store, run_id) == [(1, 1), (2, 1), (3, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("trainable", [False, True])
def test_from_scratch_trains_every_layer_without_the_feature_cache(ws, dataset, monkeypatch,
                                                                  trainable):
    store = RunStore(ws)
    run_id = store.create_run(_config(dataset, base={"weights": "none", "trainable": trainable},
                                      train={"learning_rate": 1e-4}))
    initial = {}
    build_model = loop.build_model

    def remember_initial_weights(*args, **kwargs):
        model = build_model(*args, **kwargs)
        initial["block1"] = model.get_layer("vgg16").get_layer("block1_conv1").get_weights()
        return model

    monkeypatch.setattr(loop, "build_model", remember_initial_weights)
    train.run_training(run_id, ws)

    saved = runmodel.load_run_model(run_id, ws, require_completed=False)
    after = saved.get_layer("vgg16").get_layer("block1_conv1").get_weights()
    changed = any(not np.array_equal(a, b) for a, b in zip(initial["block1"], after, strict=True))
    features = list((ws.cache_dir / "features").glob("*"))
    if trainable:  # from scratch: block1 learned, and nothing was frozen to cache
        assert changed and features == []
    else:  # weights none alone: a frozen random base under a trained head, as before
        assert not changed and features


@pytest.mark.slow
def test_a_diverging_run_stops_with_the_reason(ws, dataset):
    store = RunStore(ws)
    # An integer learning rate (as `--set train.learning_rate=10` gives) reaches Keras as a
    # float: the run trains, then diverges.
    config = _config(dataset, train={"epochs": 3}).with_overrides(["train.learning_rate=10"])
    run_id = store.create_run(config)
    with pytest.raises(DivergedError) as info:
        train.run_training(run_id, ws)
    message = str(info.value)
    assert message.startswith("Training diverged at epoch ")
    assert "Lower the learning rate (train.learning_rate is now 10.0)" in message
    assert "\n" not in message


def test_divergence_guard_rules():
    config = _config("d")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def feed(losses):
        guard = train.DivergenceGuard(config, 1)
        guard.set_model(model)
        guard.on_epoch_begin(1)
        for batch, loss in enumerate(losses):
            guard.on_train_batch_end(batch, {"loss": loss})

    feed([1.1, 0.9, 5.0, 80.0, 0.5])  # noisy, but no explosion
    feed([2000.0, 1500.0])  # high from the start (e.g. a large l2 penalty) is not divergence
    with pytest.raises(DivergedError, match="epoch 2: the loss is nan"):
        feed([1.0, float("nan")])
    with pytest.raises(DivergedError, match="epoch 2: the loss is inf"):
        feed([1.0, float("inf")])
    with pytest.raises(DivergedError, match=r"rose to 5e\+03, over 100 times its lowest"):
        feed([1.0, 0.8, 5000.0])


def test_recorder_keeps_the_best_in_memory_checkpoints_and_stops_early(ws, monkeypatch):
    monkeypatch.setenv(train.ENV_CHECKPOINT_INTERVAL, "0")  # a checkpoint every epoch
    store = RunStore(ws)
    config = _config("anything", train={"epochs": 10, "early_stopping_patience": 2})
    run_id = store.create_run(config)
    files = ws.run(run_id)
    files.dir.mkdir(parents=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax",
                                                                    name="predictions")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    state = train.TrainState()
    recorder = train.RunRecorder(store, run_id, files, model, config, 1, state, "val_loss")
    recorder.set_model(model)
    model.stop_training = False
    sequence = [1.0, 0.8, float("nan"), 0.85]
    at_best = None
    for epoch, val_loss in enumerate(sequence):
        recorder.on_epoch_begin(epoch)
        recorder.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": val_loss,
                                      "val_accuracy": 0.25 * epoch})
        if epoch == 1:
            at_best = [w.copy() for w in model.get_weights()]
        model.layers[0].set_weights([w + 1.0 for w in model.get_weights()])  # "training"
    assert model.stop_training is True
    for got, want in zip(recorder.best["predictions"], at_best, strict=True):
        np.testing.assert_array_equal(got, want)  # the best epoch's weights, kept in memory
    assert not files.model.exists() and not files.trained.exists()  # nothing written per epoch
    run = store.get_run(run_id)
    assert (run["best_epoch"], run["best_val_loss"]) == (2, pytest.approx(0.8))
    assert run["best_val_accuracy"] == pytest.approx(0.75)
    assert [m["val_loss"] for m in store.metrics(run_id)] == [1.0, pytest.approx(0.8), None,
                                                               pytest.approx(0.85)]
    assert state.phase1_done and state.phase1_epochs == 4 and state.wait == 2
    saved = train.load_checkpoint(files)
    assert saved.state.epoch == 4
    before_last_step = [w - 1.0 for w in model.get_weights()]
    for got, want in zip(saved.weights["predictions"], before_last_step, strict=True):
        np.testing.assert_allclose(got, want)
    for got, want in zip(saved.best["predictions"], at_best, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(saved.optimizer) == len(model.optimizer.variables)
    assert [p.name for p in files.checkpoint_dir.glob("*.npz")] == ["weights-e4.npz"]


@pytest.mark.slow
def test_the_loop_beats_through_every_long_step(ws, dataset, monkeypatch):
    store = RunStore(ws)
    # Phase 2 validates through Keras's fit (phase 1's head validates in one call).
    run_id = store.create_run(_config(dataset, train={"epochs": 1},
                                      fine_tune={"blocks": 1, "epochs": 1}))
    monkeypatch.setattr(entities, "HEARTBEAT_INTERVAL_S", 0.0)  # record every beat
    step, beats = ["start"], []
    monkeypatch.setattr(RunStore, "heartbeat", lambda self, _: beats.append(step[0]))

    def labelled(name, original):
        def run(*args, **kwargs):
            step[0] = name
            try:
                return original(*args, **kwargs)
            finally:
                step[0] = f"after {name}"
        return run

    for name in ("load_data", "predict_splits", "_evaluate"):
        monkeypatch.setattr(loop, name, labelled(name, getattr(loop, name)))
    monkeypatch.setattr(train.Heartbeat, "on_test_batch_end",
                        labelled("validation", train.Heartbeat.on_test_batch_end))
    train.run_training(run_id, ws)
    # Decoding images, validation batches, test predictions (with their feature pass)
    # and the stored evaluation each beat on their own, however long they take.
    assert {"load_data", "validation", "predict_splits", "_evaluate"} <= set(beats)


@pytest.mark.slow
def test_a_full_disk_at_checkpoint_time_fails_with_one_line(ws, dataset, monkeypatch):
    store = RunStore(ws)
    run_id = store.create_run(_config(dataset))

    real_savez = np.savez

    def savez(fh, *args, **kwargs):
        if "/checkpoint/" not in str(getattr(fh, "name", "")):  # the frozen base goes through
            return real_savez(fh, *args, **kwargs)
        fh.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(DiskFullError) as info:
        train.run_training(run_id, ws)
    files = ws.run(run_id)
    message = worker.failure_message(info.value, store.get_run(run_id)["config"], ws)
    assert message.startswith("disk full: ") and f"MB free in {files.checkpoint_dir} " in message
    assert [p.name for p in files.dir.rglob("*") if ".tmp" in p.name] == []
    assert not files.checkpoint_state.exists()


def _tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_checkpoint_and_trained_weights_are_refused_on_a_full_disk(ws, monkeypatch):
    files = ws.run("abcdef123456")
    files.dir.mkdir(parents=True)
    weights = {"dense": _tiny_model().layers[0].get_weights()}
    train.save_checkpoint(files, train.TrainState(epoch=1), weights)
    runmodel.save_trained(files, weights)
    before = sorted(p.name for p in files.dir.rglob("*"))
    monkeypatch.setenv("TLCORE_MIN_FREE_MB", "1e12")  # more than any disk has
    with pytest.raises(DiskFullError, match=rf"^disk full: \d+ MB free in "
                                            rf"{re.escape(str(files.checkpoint_dir))} "):
        train.save_checkpoint(files, train.TrainState(epoch=2), weights)
    with pytest.raises(DiskFullError, match=rf"^disk full: \d+ MB free in "
                                            rf"{re.escape(str(files.dir))} "):
        runmodel.save_trained(files, weights)
    assert sorted(p.name for p in files.dir.rglob("*")) == before  # the old pair stays
    assert train.load_checkpoint(files).state.epoch == 1


def test_missing_dataset_fails_before_training(ws):
    store = RunStore(ws)
    run_id = store.create_run(_config("gone"))
    with pytest.raises(NotFoundError, match="gone"):
        train.run_training(run_id, ws)
    assert store.metrics(run_id) == []


def test_class_weights_only_when_imbalanced():
    balanced = np.array([0, 0, 1, 1, 2, 2])
    assert train.class_weights(balanced, 3, "auto") is None
    skewed = np.array([0] * 8 + [1] * 2)
    weights = train.class_weights(skewed, 3, "auto")
    assert weights[0] == pytest.approx(10 / (2 * 8)) and weights[1] == pytest.approx(10 / (2 * 2))
    assert weights[2] == 1.0  # absent from training: left alone
    assert train.class_weights(skewed, 3, "none") is None


def _epochs_of(ds, tensorflow: bool) -> list[list[int]]:
    """Labels of two epochs of batches, checking each batch's rows match its labels."""
    epochs = []
    for _ in range(2):
        seen = []
        for i in range(len(ds)) if not tensorflow else [None]:
            pairs = ds if tensorflow else [ds[i]]
            for xb, yb in pairs:
                xb, yb = np.asarray(xb), np.asarray(yb)
                assert xb.dtype == "float32" and xb.shape[1:] == (4, 4, 3)
                np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)
                seen.extend(yb.tolist())
        if not tensorflow:
            ds.on_epoch_end()
        epochs.append(seen)
    return epochs


def test_batches_read_every_row_once_per_epoch(tmp_path):
    from tlcore.engine import feed

    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8,
                                  shape=(10, 4, 4, 3))
    x[:] = np.arange(10, dtype=np.uint8)[:, None, None, None]
    y = np.arange(10, dtype=np.int32)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    ds = feed.batches(mapped, y, 4, shuffle=True, seed=1)
    rows = feed.ArrayBatches(mapped, y, 4, shuffle=True, seed=1)  # the feed of JAX and PyTorch
    assert len(rows) == 3
    for epochs in (_epochs_of(ds, tensorflow=True), _epochs_of(rows, tensorflow=False)):
        assert all(sorted(seen) == list(range(10)) for seen in epochs)
        assert epochs[0] != epochs[1]  # reshuffled every epoch


def test_split_metrics():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 1])
    metrics = train.split_metrics(probs, y)
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["n"] == 3
    assert metrics["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))


def test_progress_says_validating_once_the_last_batch_is_done(ws):
    store = RunStore(ws)
    run_id = store.create_run(_config("shapes"))
    for validates, last_stage in ((True, entities.STAGE_VALIDATE), (False, entities.STAGE_TRAIN)):
        reporter = callbacks.ProgressReporter(store, run_id, 1, steps=3, total_epochs=2,
                                              validates=validates)
        reporter.on_epoch_begin(0)
        reporter.on_train_batch_end(0)
        assert store.progress(run_id)["stage"] == entities.STAGE_TRAIN
        reporter.on_train_batch_end(2)
        row = store.progress(run_id)
        assert (row["batch"], row["batches"], row["stage"]) == (3, 3, last_stage)


def test_feature_progress_is_one_count_over_every_split_with_an_eta(ws, dataset,
                                                                    monkeypatch):
    config = _config(dataset)
    keras.utils.set_random_seed(0)
    model = build_model(config, len(CLASSES), mixed_precision=False)
    data = train.load_data(config, ws)
    calls = []
    train.phase_inputs(model, config, 1, data, ws, ("train", "val", "test"),
                       lambda *p: calls.append(p))
    total = sum(data.size(s) for s in ("train", "val", "test"))
    assert {t for _, t in calls} == {total}  # one bar, not one per split
    done = [d for d, _ in calls]
    assert done[0] == 0 and done[-1] == total and done == sorted(done)

    # The run's row: images done of all, with an ETA from the measured images per second.
    store = RunStore(ws)
    run_id = store.create_run(config)
    clock = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    report = callbacks.FeatureReporter(store, run_id, phase=1, epoch=0, total_epochs=2)
    for seconds, images in ((0, 0), (5, 8), (1, 16)):  # the first chunk also compiles
        clock[0] += seconds
        report(images, 100)
    row = store.progress(run_id)
    assert row["stage"] == entities.STAGE_FEATURES and (row["batch"], row["batches"]) == (16, 100)
    assert row["eta_s"] == pytest.approx(84 / 8)  # 8 images per second after the first chunk
