"""Arrays into a Keras model, on whichever backend computes: batches to fit, compiled inference.

* `batches` gives `fit` and `predict` `(float32 x, int32 y)` batches gathered from
  (memory-mapped) arrays, so memory stays bounded however large a split is:
  through `tf.data` on TensorFlow (prefetched in parallel), through a
  `keras.utils.PyDataset` elsewhere.
* `predict_in_memory` runs a small model on arrays in a few direct calls
  (`fits_in_memory` says when they are small enough); `predict_probs` runs a
  full model on raw images in batches of `PREDICT_BATCH`.
* `forward` compiles a model's inference once for every batch size: a
  `tf.function` (XLA on GPUs), `jax.jit` of the model's stateless call, or the
  plain call under `torch.no_grad`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from tlcore import backend

# Arrays held whole in memory up to this size; larger ones stream in batches.
MAX_BYTES = 1 << 30
# Inputs per direct model call in `predict_in_memory`.
CHUNK = 4096
# Images per call in `predict_probs`.
PREDICT_BATCH = 32


def _gather(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.sort(idx)  # sequential reads from the memmap; order inside a batch is moot
    return np.asarray(x[idx], dtype=np.float32), np.asarray(y[idx], dtype=np.int32)


class ArrayBatches(keras.utils.PyDataset):
    """Batches gathered from arrays; reshuffled (seeded) after every epoch when `shuffle`."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool,
                 seed: int, labels: bool = True) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.labels = x, y, batch_size, labels
        self.shuffle, self.rng = shuffle, np.random.default_rng(seed)
        self.order = self._order()

    def _order(self) -> np.ndarray:
        n = len(self.y)
        return self.rng.permutation(n) if self.shuffle else np.arange(n)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        xb, yb = _gather(self.x, self.y, self.order[index * self.batch_size:
                                                    (index + 1) * self.batch_size])
        return (xb, yb) if self.labels else xb

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self._order()


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int,
            labels: bool = True) -> Any:
    """`(x, y)` batches (only `x` when not `labels`) for `fit` or `predict`.

    Works for images and for cached features alike.
    """
    if backend.current() != "tensorflow":
        return ArrayBatches(x, y, batch_size, shuffle=shuffle, seed=seed, labels=labels)
    import tensorflow as tf

    n = len(y)
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    row_shape = tuple(x.shape[1:])

    def load(idx: tf.Tensor) -> Any:
        xb, yb = tf.numpy_function(lambda i: _gather(x, y, i), [idx], (tf.float32, tf.int32))
        xb.set_shape((None, *row_shape))
        yb.set_shape((None,))
        return (xb, yb) if labels else xb

    return (indices.batch(batch_size)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def forward(model: keras.Model, jit: bool | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """`model`'s inference as a function of a float32 numpy batch, compiled once.

    Args:
        model: A built Keras model (in inference mode: `training=False`).
        jit: XLA-compile on TensorFlow; default on when a GPU computes. JAX always
            compiles; PyTorch runs eagerly.

    Returns:
        A function from `(N, ...)` inputs to numpy outputs; any batch size.
    """
    name = backend.current()
    if name == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        compiled = tf.function(lambda batch: model(batch, training=False),
                               input_signature=[spec],
                               jit_compile=backend.has_gpu() if jit is None else jit)
        return lambda batch: compiled(tf.constant(np.asarray(batch, np.float32))).numpy()
    if name == "jax":
        import jax

        state = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables])

        @jax.jit
        def infer(trainable: Any, non_trainable: Any, batch: Any) -> Any:
            out, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
            return out

        return lambda batch: np.asarray(infer(*state, np.asarray(batch, np.float32)))

    def call(batch: np.ndarray) -> np.ndarray:
        with inference():
            inputs = keras.ops.convert_to_tensor(np.asarray(batch, np.float32))
            return keras.ops.convert_to_numpy(model(inputs, training=False))

    return call


def fits_in_memory(*arrays: np.ndarray) -> bool:
    """Whether the arrays together stay under `MAX_BYTES` as float32."""
    return sum(4 * int(np.prod(a.shape)) for a in arrays) <= MAX_BYTES


@contextlib.contextmanager
def inference() -> Iterator[None]:
    """No gradient bookkeeping for direct model calls (PyTorch records them otherwise)."""
    if backend.current() != "torch":
        yield
        return
    import torch

    with torch.no_grad():
        yield


def predict_in_memory(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """`model`'s float64 outputs for `x`, in a few direct (eager) calls."""
    n_out = int(model.outputs[0].shape[-1])
    with inference():
        parts = [np.asarray(keras.ops.convert_to_numpy(model(
            keras.ops.convert_to_tensor(np.asarray(x[i:i + CHUNK], np.float32)),
            training=False)), dtype=np.float64) for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, n_out))


def predict_probs(model: keras.Model, x: np.ndarray, batch_size: int = PREDICT_BATCH
                  ) -> np.ndarray:
    """Softmax outputs `(N, C)` float64 for raw RGB uint8 images `(N, S, S, 3)`, in batches."""
    run = forward(model)  # compiled once for every batch size
    out = [run(np.asarray(x[start:start + batch_size], dtype=np.float32)).astype(np.float64)
           for start in range(0, len(x), batch_size)]
    n_out = int(model.outputs[0].shape[-1])
    return np.concatenate(out) if out else np.zeros((0, n_out))
