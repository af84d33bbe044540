"""Grad-CAM: shapes on the engine's model, and it finds a planted object."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.support.evalutil import engine_model, run_config
from tlcore.engine.gradcam import colorize, find_last_conv, gradcam, overlay

S, Q = 40, 8  # image size, side of the planted square


def planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images with one bright square at a random place; its colour is the class."""
    x = rng.integers(0, 90, (n, S, S, 3)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    pos = rng.integers(0, S - Q, (n, 2))
    for img, label, (r, c) in zip(x, y, pos, strict=True):
        img[r:r + Q, c:c + Q] = (230, 40, 40) if label == 0 else (40, 40, 230)
    return x, y, pos


def tiny_model() -> keras.Model:
    """The engine's layout in miniature: a nested "vgg16" conv base and a nested head."""
    base_in = keras.Input((S, S, 3))
    h = keras.layers.Rescaling(1 / 255)(base_in)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block5_conv3")(h)
    base = keras.Model(base_in, h, name="vgg16")
    head_in = keras.Input(base.output.shape[1:])
    out = keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(head_in))
    head = keras.Model(head_in, out, name="head")
    inputs = keras.Input((S, S, 3))
    return keras.Model(inputs, head(base(inputs)))


@pytest.mark.slow
def test_gradcam_highlights_the_planted_square():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y, _ = planted(256, rng)
    model = tiny_model()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x.astype("float32"), y, epochs=6, batch_size=32, verbose=0)
    xt, yt, pos = planted(32, rng)
    assert (model.predict(xt.astype("float32"), verbose=0).argmax(1) == yt).mean() >= 0.9

    heat = gradcam(model, xt)
    inside, outside = [], []
    for h, (r, c) in zip(heat, pos, strict=True):
        mask = np.zeros((S, S), bool)
        mask[r:r + Q, c:c + Q] = True
        inside.append(h[mask].mean())
        outside.append(h[~mask].mean())
    ratio = np.mean(inside) / np.mean(outside)
    assert ratio > 2.0, f"heat inside/outside the square = {ratio:.2f}"
    assert np.mean(np.array(inside) > np.array(outside)) >= 0.9


def test_gradcam_on_the_engine_model_shape_range_and_restore():
    config = run_config("d")
    model = engine_model(config, 3)
    assert [layer.name for layer in find_last_conv(model)[1:]] == ["vgg16", "block5_conv3"]
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    for class_index in (None, 2, [0, 1, 2]):
        heat = gradcam(model, x, class_index=class_index)
        assert heat.shape == (3, 32, 32) and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert gradcam(model, x[0]).shape == (1, 32, 32)
    # The softmax that Grad-CAM switches off while scoring logits is back.
    probs = model.predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="one index or 3"):
        gradcam(model, x, class_index=[0, 1])


def test_gradcam_on_a_flat_model():
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(h)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, out)
    assert find_last_conv(model)[-1].name == "c2"
    heat = gradcam(model, np.zeros((2, 16, 16, 3), np.uint8) + 100)
    assert heat.shape == (2, 16, 16)


def test_overlay_and_colorize():
    img = np.full((20, 20, 3), 128, np.uint8)
    heat = np.zeros((5, 5), np.float32)
    heat[2, 2] = 1.0
    out = overlay(img, heat)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[10, 10], out[0, 0])  # hot centre, cold corner
    ramp = colorize(np.array([[0.0, 1.0]]))
    assert ramp.shape == (1, 2, 3) and ramp[0, 1, 0] > ramp[0, 0, 0]  # red end is redder
