"""Fit a small model on in-memory arrays with one compiled call per epoch.

A head on cached frozen features costs well under a millisecond per batch, so
Keras's `fit` spends nearly all its time elsewhere: an iterator per epoch, a
Python round trip and callbacks per batch, a retrace for the last, smaller
batch. `fit_in_memory` runs each epoch as a single `tf.function` call that
loops over the batches in the graph (shuffled by a seeded permutation), and
validation as another; the Keras callbacks get the same calls as under `fit`
(`on_epoch_begin`, `on_train_batch_end` with each batch's running loss,
`on_epoch_end` with `loss`, `accuracy`, `val_loss`, `val_accuracy`), the
batch calls right after the epoch's compiled call. The loss is Keras's:
sparse categorical cross-entropy (times the class weight), mean over the batch,
plus the layers' regularization losses.

TensorFlow backend only (TensorFlow is imported when it is called);
`train.plan_phase` uses it there for head-only phases
on cached features that fit in memory (`feed.fits_in_memory`), and Keras's
`fit` otherwise.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tlcore.engine.feed import predict_in_memory


def _regularization(model: keras.Model) -> Any:
    import tensorflow as tf

    return tf.add_n([tf.cast(v, tf.float32) for v in model.losses]) if model.losses else 0.0


def fit_in_memory(model: keras.Model, x: np.ndarray, y: np.ndarray, xv: np.ndarray,
                  yv: np.ndarray, *, batch_size: int, epochs: int, initial_epoch: int,
                  seed: int, class_weight: dict[int, float] | None,
                  callbacks: list[keras.callbacks.Callback]) -> None:
    """Train the compiled `model` on `(x, y)`, validating on `(xv, yv)` after each epoch.

    Args:
        model: A model compiled with an optimizer (its loss is not used: see the
            module docstring).
        x, y: Training inputs and int labels.
        xv, yv: Validation inputs and labels (may be empty).
        batch_size: Batch size.
        epochs: Index of the epoch to stop before (as in `fit`).
        initial_epoch: Index of the first epoch (as in `fit`).
        seed: Seeds the per-epoch shuffle (epoch `e` uses `seed + e`).
        class_weight: Weight per class index, or None.
        callbacks: Keras callbacks; `model.stop_training` ends the fit after an epoch.
    """
    import tensorflow as tf

    x_t = tf.constant(np.asarray(x, dtype=np.float32))
    y_t = tf.constant(np.asarray(y, dtype=np.int32))
    weights = np.ones(max(int(y.max(initial=0)) + 1, len(class_weight or {})), np.float32)
    for c, w in (class_weight or {}).items():
        weights[c] = w
    w_t = tf.constant(weights[np.asarray(y, dtype=np.int64)])
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = model.trainable_variables
    n = len(y)
    steps = -(-n // batch_size)

    def step(i: tf.Tensor, order: tf.Tensor, losses: tf.TensorArray, correct: tf.Tensor
             ) -> tuple[tf.Tensor, tf.Tensor, tf.TensorArray, tf.Tensor]:
        idx = order[i * batch_size:tf.minimum((i + 1) * batch_size, n)]
        xb, yb, wb = tf.gather(x_t, idx), tf.gather(y_t, idx), tf.gather(w_t, idx)
        with tf.GradientTape() as tape:
            probs = tf.cast(model(xb, training=True), tf.float32)
            ce = keras.losses.sparse_categorical_crossentropy(yb, probs)
            loss = tf.reduce_mean(ce * wb) + _regularization(model)
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, variables), variables)
        hits = tf.cast(tf.argmax(probs, axis=-1, output_type=tf.int32) == yb, tf.float32)
        return i + 1, order, losses.write(i, loss), correct + tf.reduce_sum(hits)

    # autograph=False: converting Keras's own code costs seconds per trace; the loop is
    # written as a tf.while_loop instead.
    @tf.function(autograph=False)
    def train_epoch(order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        start = (tf.constant(0), order, tf.TensorArray(tf.float32, size=steps),
                 tf.constant(0.0))
        _, _, losses, correct = tf.while_loop(lambda i, *_: i < steps, step, start)
        return losses.stack(), correct / n

    def validate() -> tuple[float, float]:
        probs = predict_in_memory(model, xv)
        picked = np.clip(probs[np.arange(len(yv)), yv], 1e-7, 1.0)
        return (float(-np.mean(np.log(picked))) + float(_regularization(model)),
                float(np.mean(probs.argmax(axis=1) == yv)))

    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    hooks.on_train_begin()
    sizes = np.minimum(batch_size, n - batch_size * np.arange(steps)).astype(np.float64)
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        hooks.on_train_batch_begin(0)
        order = np.random.default_rng(seed + epoch).permutation(n).astype(np.int32)
        losses, accuracy = train_epoch(tf.constant(order))
        running = np.cumsum(losses.numpy() * sizes) / np.cumsum(sizes)  # as Keras reports it
        for batch, value in enumerate(running):
            hooks.on_train_batch_end(batch, {"loss": float(value)})
        logs: dict[str, Any] = {"loss": float(running[-1]), "accuracy": float(accuracy)}
        if len(yv):
            val_loss, val_accuracy = validate()
            logs.update(val_loss=float(val_loss), val_accuracy=float(val_accuracy))
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()
