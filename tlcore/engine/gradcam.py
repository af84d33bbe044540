"""Grad-CAM: where in the image the model looked for the class it scored.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization" (2017): weight each channel of the last
convolutional feature map by the mean gradient of the class score over that
map, sum, keep the positive part, upsample to the image.

The class score is the logit (pre-softmax), as the paper prescribes: the
gradient of a saturated probability is close to zero and would give an empty
map for the most confident predictions. The last convolution is found whether
the VGG16 base sits flat in the model or as a nested functional model
("vgg16"), and the head may be nested too.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# A perceptually ordered colormap (dark blue -> cyan -> yellow -> red) as
# anchor points, interpolated in numpy so no plotting library is needed.
_CMAP_ANCHORS = np.array([
    [48, 18, 59], [65, 105, 225], [30, 190, 230], [70, 245, 115],
    [200, 240, 50], [250, 180, 40], [230, 90, 20], [122, 4, 3],
], dtype=np.float64)


def find_last_conv(model: Any) -> list[Any]:
    """Path to the last 2-D convolution: `[model, (nested model, ...), conv layer]`.

    Raises:
        ValueError: if the model has no Conv2D layer.
    """
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return [model, layer]
        if isinstance(layer, keras.Model):
            try:
                return [model, *find_last_conv(layer)]
            except ValueError:
                continue
    raise ValueError(f"Grad-CAM needs a Conv2D layer; model {model.name!r} has none.")


def _tap(path: list[Any], outputs: Any) -> tuple[Any, Any]:
    """Callables `x -> conv activations` and `conv activations -> outputs`.

    The conv is the layer at the end of `path`; `outputs` is a symbolic tensor
    of `path[0]`'s graph. A nested model is split around its call: the part
    before it, the nested model split recursively, and the part after it.
    Splitting at the conv lets the gradient tape record only what follows it.
    """
    import keras

    model, child = path[0], path[1]
    if len(path) == 2:
        to_conv = keras.Model(model.inputs, child.output)
        if child.output is outputs:  # the conv ends this (nested) model
            return to_conv, lambda conv, training=False: conv
        return to_conv, keras.Model(child.output, outputs)
    inner_to, inner_from = _tap(path[1:], child.outputs[0])
    # The nested model's call in this graph is one of its inbound nodes; its
    # tensors join the outer input to the nested model and the rest of the graph.
    for node in reversed(child._inbound_nodes):
        try:
            before = keras.Model(model.inputs, node.input_tensors[0])
            after = keras.Model(node.output_tensors[0], outputs)
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"Cannot find where model {model.name!r} calls {child.name!r}.")

    def to_conv(x: Any, training: bool = False) -> Any:
        return inner_to(before(x, training=training), training=training)

    def from_conv(conv: Any, training: bool = False) -> Any:
        return after(inner_from(conv, training=training), training=training)

    return to_conv, from_conv


def _output_layer(model: Any) -> Any:
    """The layer that produces the model's output, looking inside nested models."""
    import keras

    last = model.layers[-1]
    return _output_layer(last) if isinstance(last, keras.Model) else last


@contextlib.contextmanager
def _logits(model: Any) -> Iterator[None]:
    """While inside, the model outputs logits: its final softmax becomes linear.

    Keras layers look their activation up at call time, so swapping it on the
    output layer changes every model built from that layer; it is undone on exit.
    """
    import keras

    layer = _output_layer(model)
    activation = getattr(layer, "activation", None)
    if activation is not keras.activations.softmax and (
            getattr(activation, "__name__", "") != "softmax"):
        yield
        return
    layer.activation = keras.activations.linear
    try:
        yield
    finally:
        layer.activation = activation


def gradcam(model: Any, images_uint8: np.ndarray, class_index: int | list[int] | None = None,
            batch_size: int = 16) -> np.ndarray:
    """Grad-CAM heatmaps for a batch of images.

    Args:
        model: A Keras model taking raw RGB images `(N, S, S, 3)`.
        images_uint8: uint8 (or 0-255 float) images `(N, S, S, 3)` or one `(S, S, 3)`.
        class_index: Class to explain: one index for all images, one per
            image, or None for each image's predicted class.
        batch_size: Images per gradient pass.

    Returns:
        float32 `(N, S, S)` in [0, 1]; each map is scaled so its maximum is 1
        (all zeros when no location supports the class).
    """
    import keras

    from tlcore.engine import feed

    images = np.asarray(images_uint8)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, S, S, 3). Received: {images.shape}")
    n = images.shape[0]
    if class_index is None or np.ndim(class_index) == 0:
        targets = None if class_index is None else np.full(n, int(class_index))
    else:
        targets = np.asarray(class_index, dtype=np.int64)
        if targets.shape != (n,):
            raise ValueError(f"class_index must be one index or {n} indices. "
                             f"Received: {len(targets)} indices")
    to_conv, from_conv = _tap(find_last_conv(model), model.outputs[0])

    maps = []
    with _logits(model):
        gradient = conv_gradient(from_conv)
        for start in range(0, n, batch_size):
            with feed.inference():
                conv = keras.ops.convert_to_numpy(to_conv(keras.ops.convert_to_tensor(
                    np.asarray(images[start:start + batch_size], np.float32)), training=False))
                chosen = (targets[start:start + batch_size] if targets is not None else
                          keras.ops.convert_to_numpy(keras.ops.argmax(from_conv(
                              keras.ops.convert_to_tensor(conv), training=False), axis=-1)))
            grads = gradient(conv, np.asarray(chosen, np.int32))
            conv = conv.astype(np.float32)
            weights = grads.astype(np.float32).mean(axis=(1, 2), keepdims=True)
            cam = np.maximum((weights * conv).sum(axis=-1), 0.0)
            peak = cam.max(axis=(1, 2), keepdims=True)
            cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
            cam = keras.ops.convert_to_numpy(keras.ops.image.resize(
                cam[..., None], images.shape[1:3], interpolation="bilinear"))[..., 0]
            maps.append(np.clip(cam, 0.0, 1.0).astype(np.float32))
    return np.concatenate(maps) if maps else np.zeros((0, *images.shape[1:3]), np.float32)


def conv_gradient(from_conv: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`(activations, classes) -> gradient of each image's class score w.r.t. its activations`.

    The one backend-specific step of Grad-CAM: TensorFlow's tape, `jax.grad`
    (compiled once per model and batch shape), `torch.autograd.grad`. The score
    differentiated is the sum over the batch of each image's score for its
    class; its gradient is every image's own, as images do not interact.

    Args:
        from_conv: `conv activations -> class scores` (logits).
    """
    import keras

    from tlcore import backend

    def total_score(activations: Any, classes: Any) -> Any:
        scores = keras.ops.cast(from_conv(activations, training=False), "float32")
        picked = keras.ops.take_along_axis(scores, keras.ops.expand_dims(classes, -1), axis=1)
        return keras.ops.sum(picked)

    name = backend.current()
    if name == "tensorflow":
        import tensorflow as tf

        def tape_gradient(conv: np.ndarray, classes: np.ndarray) -> np.ndarray:
            activations = tf.constant(conv)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(activations)
                score = total_score(activations, tf.constant(classes))
            return tape.gradient(score, activations).numpy()

        return tape_gradient
    if name == "jax":
        import jax

        compiled = jax.jit(jax.grad(total_score))
        return lambda conv, classes: np.asarray(compiled(conv, classes))
    import torch

    def autograd(conv: np.ndarray, classes: np.ndarray) -> np.ndarray:
        device = keras.ops.convert_to_tensor(conv[:1]).device
        activations = torch.tensor(conv, requires_grad=True, device=device)
        (grads,) = torch.autograd.grad(
            total_score(activations, torch.tensor(classes, device=device)), activations)
        return grads.detach().cpu().numpy()

    return autograd


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] `(H, W)` to uint8 RGB `(H, W, 3)`."""
    h = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0)
    pos = h * (len(_CMAP_ANCHORS) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(_CMAP_ANCHORS) - 1)
    frac = (pos - lo)[..., None]
    rgb = _CMAP_ANCHORS[lo] * (1 - frac) + _CMAP_ANCHORS[hi] * frac
    return np.round(rgb).astype(np.uint8)


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a colorized heatmap over an image; the heatmap is resized to fit.

    Args:
        image_uint8: RGB `(H, W, 3)`.
        heatmap: `(h, w)` values in [0, 1].
        alpha: Weight of the heatmap colour where the heat is 1; it fades with
            the heat so cold regions keep the image's own colours.

    Returns:
        uint8 RGB `(H, W, 3)`.
    """
    from PIL import Image

    image = np.asarray(image_uint8, dtype=np.uint8)
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if heat.shape != image.shape[:2]:
        resized = Image.fromarray(heat).resize(
            (image.shape[1], image.shape[0]), Image.BILINEAR)
        heat = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    weight = (alpha * (0.35 + 0.65 * heat))[..., None]
    blended = image.astype(np.float64) * (1 - weight) + colorize(heat) * weight
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode a uint8 RGB array (an overlay, an image) as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
