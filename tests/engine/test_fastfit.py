"""Head training on in-memory features: one compiled call per epoch, and a warm run that
never builds the network."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.support.evalutil import make_dataset, run_config
from tlcore.engine import fastfit, train
from tlcore.store import RunStore
from tlcore.vgg16 import bases


class Recorder(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))
        if epoch == 3:
            self.model.stop_training = True


def _head() -> keras.Model:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu",
                                kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    return model


def test_fit_in_memory_learns_and_reports_like_fit():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (3, 6))
    y = rng.integers(0, 3, 200).astype(np.int32)
    x = (centers[y] + rng.normal(0, 1, (200, 6))).astype(np.float32)
    keras.utils.set_random_seed(0)
    model, seen = _head(), Recorder()
    fastfit.fit_in_memory(model, x[:150], y[:150], x[150:], y[150:], batch_size=32, epochs=10,
                          initial_epoch=0, seed=0, class_weight=None, callbacks=[seen])
    assert len(seen.epochs) == 4  # stop_training after the fourth epoch ends the fit
    assert len(seen.batches) == 4 * 5  # ceil(150 / 32) batch calls per epoch
    assert seen.epochs[-1]["val_accuracy"] > 0.9 and seen.epochs[-1]["accuracy"] > 0.9
    assert seen.epochs[-1]["loss"] == pytest.approx(seen.batches[-1])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4 * 5
    # Validation loss as Keras computes it: cross-entropy plus the L2 penalty.
    probs = model.predict(x[150:], verbose=0)
    ce = -np.mean(np.log(probs[np.arange(50), y[150:]]))
    penalty = sum(float(v) for v in model.losses)
    assert seen.epochs[-1]["val_loss"] == pytest.approx(ce + penalty, rel=1e-4)

    weighted, plain = Recorder(), Recorder()
    for weights, rec in (({0: 5.0, 1: 1.0, 2: 1.0}, weighted), (None, plain)):
        keras.utils.set_random_seed(0)
        fastfit.fit_in_memory(_head(), x, y, x[:0], y[:0], batch_size=200, epochs=1,
                              initial_epoch=0, seed=0, class_weight=weights, callbacks=[rec])
    assert weighted.batches[0] > plain.batches[0] * 1.5  # class 0 counts five times
    assert "val_loss" not in plain.epochs[0]  # no validation split, no validation


@pytest.mark.slow
def test_a_warm_run_trains_the_head_alone_with_the_same_result(ws, tmp_path, caplog):
    make_dataset(ws, "shapes")
    keras.utils.set_random_seed(1)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    weights_file = tmp_path / "vgg.weights.h5"
    vgg.save_weights(weights_file)
    store = RunStore(ws)
    config = run_config("shapes", weights=str(weights_file), **{"train.epochs": 2})
    results = []
    for _ in range(2):  # cold: the whole network; warm: the head on cached features
        run_id = store.create_run(config)
        caplog.clear()
        with caplog.at_level("INFO", logger="tlcore.engine.train"):
            train.run_training(run_id, ws)
        alone = "training the head alone" in caplog.text
        results.append((run_id, alone, store.metrics(run_id),
                        store.get_run(run_id)["test_metrics"]))
    (cold, cold_alone, cold_m, cold_t), (warm, warm_alone, warm_m, warm_t) = results
    assert (cold_alone, warm_alone) == (False, True)
    assert bases.run_base(ws.run(cold)) == bases.run_base(ws.run(warm))
    for a, b in zip(cold_m, warm_m, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert cold_t == pytest.approx(warm_t, rel=1e-5)
    for name, values in bases.load_layer_weights(ws.run(cold).trained).items():
        for got, want in zip(bases.load_layer_weights(ws.run(warm).trained)[name], values,
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
