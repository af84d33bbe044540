"""Build the VGG16 + dense head model from a run config, and its freeze policy.

The model takes raw RGB images (float, 0-255) and returns class probabilities:

    image -> [augmentation] -> vgg16_preprocess -> vgg16 (nested) -> head (nested)

* Augmentation uses Keras preprocessing layers; they are random in training only.
* `vgg16_preprocess` is VGG16's own `preprocess_input` ("caffe": RGB -> BGR and
  subtract the ImageNet mean) written as a frozen 1x1 float32 Conv2D whose kernel
  is the channel permutation and whose bias is minus the mean. That is exact and
  uses only built-in layers, so a saved `model.keras` loads with
  `keras.models.load_model(path, safe_mode=True)` without tlcore installed.
* `vgg16` is `keras.applications.VGG16(include_top=False)`; its conv weights are
  set by layer name from the source the config names, loaded beforehand by
  `tlcore.engine.weights.load_base_weights` (or here, when a caller passes none).
* `head` is its own small model (pooling -> dense blocks -> softmax), so code
  that already has the base's output (a feature cache) can train it directly.

Small composable builders: `build_base`, `build_head`, `build_model`, `set_phase`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np

from tlcore import backend
from tlcore.config import RunConfig
from tlcore.engine.weights import load_base_weights
from tlcore.errors import ConfigError
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace

BASE_NAME = backbones.BACKBONE_NAME
HEAD_NAME = "head"
INPUT_NAME = "image"


# ---- precision ----------------------------------------------------------------
def use_mixed_precision(config: RunConfig) -> bool:
    """Whether the run computes in float16 (`auto`: when a GPU is present)."""
    setting = config.train.mixed_precision
    if setting == "auto":
        return backend.has_gpu()
    return setting == "on"


# ---- builders ---------------------------------------------------------------
def build_base(config: RunConfig, ws: Workspace | None = None,
               weights: dict[str, list[np.ndarray]] | None = None) -> keras.Model:
    """VGG16 without its top at `config.image_size`, with the weights the config names.

    Args:
        config: The run config.
        ws: The workspace (for local weights files and `run:<id>`).
        weights: Conv weights already loaded with `load_base_weights` (skips loading).

    Returns:
        The `vgg16` model: input `(S, S, 3)` preprocessed BGR, output block5_pool.
    """
    size = config.image_size
    base = keras.applications.VGG16(include_top=False, weights=None,
                                    input_shape=(size, size, 3), name=BASE_NAME)
    if weights is None and config.base.weights != "none":
        weights = load_base_weights(config, ws)
    if weights is not None:
        for name in backbones.CONV_LAYERS:
            base.get_layer(name).set_weights(weights[name])
    return base


def build_preprocess(image_size: int) -> keras.layers.Layer:
    """VGG16's caffe preprocessing as a frozen, exact, float32 1x1 Conv2D (built)."""
    layer = keras.layers.Conv2D(3, 1, dtype="float32", trainable=False,
                                name=backbones.PREPROCESS_LAYER)
    layer.build((None, image_size, image_size, 3))
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for bgr in range(3):
        kernel[0, 0, 2 - bgr, bgr] = 1.0  # output channel bgr reads input channel 2 - bgr
    layer.set_weights([kernel, -np.asarray(backbones.IMAGENET_MEAN_BGR, dtype=np.float32)])
    return layer


def build_augmentation(config: RunConfig) -> list[keras.layers.Layer]:
    """The configured random augmentation layers (empty when augmentation is off).

    They run in float32 on raw 0-255 pixels and are identity outside training.
    """
    aug, seed = config.augment, config.train.seed
    names = {field: name for field, name, _ in backbones.AUGMENT_LAYERS}
    out: list[keras.layers.Layer] = []
    if aug.flip != "none":
        mode = "horizontal_and_vertical" if aug.flip == "both" else aug.flip
        out.append(keras.layers.RandomFlip(mode, seed=seed, dtype="float32", name=names["flip"]))
    if aug.rotation > 0:
        out.append(keras.layers.RandomRotation(aug.rotation, seed=seed + 1, dtype="float32",
                                               name=names["rotation"]))
    if aug.zoom > 0:
        out.append(keras.layers.RandomZoom(aug.zoom, seed=seed + 2, dtype="float32",
                                           name=names["zoom"]))
    if aug.translate > 0:
        out.append(keras.layers.RandomTranslation(aug.translate, aug.translate, seed=seed + 3,
                                                  dtype="float32", name=names["translate"]))
    if aug.contrast > 0:
        out.append(keras.layers.RandomContrast(aug.contrast, seed=seed + 4, dtype="float32",
                                               name=names["contrast"]))
    return out


def build_head(config: RunConfig, input_shape: tuple[int, ...], num_classes: int
               ) -> keras.Model:
    """The dense head: pooling -> [Dense -> (BatchNorm -> Activation) -> Dropout]* -> softmax.

    With batchnorm the dense layer has no bias (BatchNorm's beta replaces it) and the
    activation follows the normalisation. The output layer stays float32 under
    mixed precision so the softmax and the loss are computed accurately.

    Args:
        config: The run config (its `head` section).
        input_shape: Shape of the base output without the batch dimension.
        num_classes: Number of classes.

    Returns:
        The `head` model.
    """
    head = config.head
    reg = keras.regularizers.L2(head.l2) if head.l2 > 0 else None
    seed = config.train.seed

    def init(i: int) -> keras.initializers.Initializer:
        # Seeded per layer: the head starts the same whether or not the base was
        # built first (a run on cached features builds the head alone).
        return keras.initializers.GlorotUniform(seed=seed + 100 + i)

    inputs = keras.Input(shape=tuple(input_shape), name="features")
    if head.pooling == "flatten":
        x = keras.layers.Flatten(name="head_flatten")(inputs)
    elif head.pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="head_avg_pool")(inputs)
    else:
        x = keras.layers.GlobalMaxPooling2D(name="head_max_pool")(inputs)
    for i, units in enumerate(head.dense, start=1):
        if head.batchnorm:
            x = keras.layers.Dense(units, use_bias=False, kernel_regularizer=reg,
                                   kernel_initializer=init(i), name=f"head_dense{i}")(x)
            x = keras.layers.BatchNormalization(name=f"head_bn{i}")(x)
            x = keras.layers.Activation(head.activation, name=f"head_act{i}")(x)
        else:
            x = keras.layers.Dense(units, activation=head.activation, kernel_regularizer=reg,
                                   kernel_initializer=init(i), name=f"head_dense{i}")(x)
        if head.dropout > 0:
            x = keras.layers.Dropout(head.dropout, seed=config.train.seed,
                                     name=f"head_dropout{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                                 kernel_initializer=init(0), dtype="float32",
                                 name=backbones.OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name=HEAD_NAME)


@contextlib.contextmanager
def dtype_policy(mixed_precision: bool) -> Iterator[None]:
    """Create layers under "mixed_float16" or "float32"; the caller's policy is restored.

    Layers take the global policy when they are created.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config: RunConfig, num_classes: int, ws: Workspace | None = None, *,
                base_weights: dict[str, list[np.ndarray]] | None = None,
                mixed_precision: bool | None = None) -> keras.Model:
    """The full model: raw RGB 0-255 in, class probabilities out. Phase 1 freeze applied.

    Args:
        config: The run config.
        num_classes: Number of classes (at least 2).
        ws: The workspace (weights resolution).
        base_weights: Conv weights already loaded with `load_base_weights`.
        mixed_precision: Compute in float16; default `use_mixed_precision(config)`.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        WeightsError, NotFoundError, RunStateError: as `load_base_weights`.
    """
    if num_classes < 2:
        raise ConfigError(f"A classifier needs at least 2 classes. Received: {num_classes}")
    if mixed_precision is None:
        mixed_precision = use_mixed_precision(config)
    size = config.image_size
    if base_weights is None and config.base.weights != "none":
        base_weights = load_base_weights(config, ws)
    with dtype_policy(mixed_precision):
        inputs = keras.Input(shape=(size, size, 3), dtype="float32", name=INPUT_NAME)
        x = inputs
        for layer in build_augmentation(config):
            x = layer(x)
        x = build_preprocess(size)(x)
        base = build_base(config, ws, weights=base_weights)
        # VGG16 has no BatchNorm or Dropout, so its output never depends on the
        # training flag; training=False states the intent of a frozen feature extractor.
        x = base(x, training=False)
        outputs = build_head(config, base.output.shape[1:], num_classes)(x)
        model = keras.Model(inputs, outputs, name=f"{BASE_NAME}_transfer")
    set_phase(model, config, 1)
    return model


def set_phase(model: keras.Model, config: RunConfig, phase: int) -> None:
    """Apply the freeze policy of `phase` (recompile afterwards).

    Phase 1: the whole base is frozen, the head trains. Phase 2: the last
    `fine_tune.blocks` VGG16 blocks train as well. With `base.trainable` every
    block trains in both phases (from scratch when the weights are none).
    Preprocessing never trains.

    Raises:
        ConfigError: if `phase` is not 1 or 2.
    """
    if phase not in (1, 2):
        raise ConfigError(f"phase must be 1 or 2. Received: phase={phase!r}")
    base = model.get_layer(BASE_NAME)
    blocks = backbones.trainable_blocks(config, phase)
    base.trainable = bool(blocks)
    for layer in base.layers:
        layer.trainable = backbones.block_of(layer.name) in blocks
    model.get_layer(HEAD_NAME).trainable = True
    model.get_layer(backbones.PREPROCESS_LAYER).trainable = False


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer: "adam", "sgd" (momentum 0.9, the usual fine-tuning choice) or "rmsprop".

    Raises:
        ConfigError: for an unknown name.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise ConfigError(f"train.optimizer must be adam, sgd or rmsprop. Received: {name!r}")


def compile_for_phase(model: keras.Model, config: RunConfig, phase: int) -> None:
    """Compile `model` with `phase`'s learning rate and a fresh optimizer.

    `model` is what Keras fits: the full model, or a part of it that shares its layers
    (e.g. the head alone on cached base features). Apply `set_phase` to the full
    model first.
    """
    rate = config.train.learning_rate if phase == 1 else config.fine_tune.learning_rate
    model.compile(optimizer=make_optimizer(config.train.optimizer, rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

