"""VGG16 facts without TensorFlow: blocks, preprocessing, parameter table, weights files.

The dashboard imports this module to show what a config will build and which
pretrained weights are available, so it never imports TensorFlow or Keras; it
reads weights files with h5py only. `tlcore.engine.model` builds the network from the
same table, and the tests check that both agree with what Keras reports.

Weights files come in two layouts and both are accepted:

* Keras 3 `.weights.h5`: `layers/<object name>/vars/<i>`, where the `vars`
  group may carry the layer name as attribute `name` (e.g. `block1_conv1`);
* legacy Keras 2 `.h5` (the file Keras downloads): root attribute
  `layer_names`, one group per layer with attribute `weight_names`, possibly
  under `model_weights/` when a whole model was saved.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, WeightsError
from tlcore.settings import env_number
from tlcore.workspace import Workspace


@dataclass(frozen=True)
class Block:
    """One VGG16 block: 3x3 'same' convolutions with ReLU, then a 2x2 max-pool."""

    name: str
    filters: int
    convs: tuple[str, ...]
    pool: str


BACKBONE_NAME = "vgg16"
BLOCKS: tuple[Block, ...] = tuple(
    Block(f"block{b}", filters, tuple(f"block{b}_conv{i}" for i in range(1, n + 1)),
          f"block{b}_pool")
    for b, (filters, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1)
)
CONV_LAYERS: tuple[str, ...] = tuple(c for blk in BLOCKS for c in blk.convs)
KERNEL_SIZE = 3

# Keras's `vgg16.preprocess_input` ("caffe" mode): RGB -> BGR, then subtract the
# ImageNet mean per BGR channel; no scaling.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
PREPROCESS_LAYER = "vgg16_preprocess"

# What Keras downloads for `VGG16(weights="imagenet", include_top=False)`.
KERAS_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"
VGG16_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_WEIGHTS_FILE
)
ENV_WEIGHTS = "TLCORE_VGG16_WEIGHTS"
WEIGHTS_SUFFIXES = (".h5", ".hdf5")

# Augmentation layer names, in the order the model applies them (config field -> layer).
AUGMENT_LAYERS = (
    ("flip", "augment_flip", "RandomFlip"),
    ("rotation", "augment_rotation", "RandomRotation"),
    ("zoom", "augment_zoom", "RandomZoom"),
    ("translate", "augment_translate", "RandomTranslation"),
    ("contrast", "augment_contrast", "RandomContrast"),
)
OUTPUT_LAYER = "predictions"

ENV_MAX_PARAMS = "TLCORE_MAX_PARAMS"
# Sensible recipes stay far below: 150 px flatten + 256 has 16.8 M, 512 px flatten + 256 48 M.
DEFAULT_MAX_PARAMS = 200_000_000


def conv_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """`{conv layer name: (kernel shape, bias shape)}` of VGG16 without its top."""
    out: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    channels = 3
    for blk in BLOCKS:
        for conv in blk.convs:
            out[conv] = ((KERNEL_SIZE, KERNEL_SIZE, channels, blk.filters), (blk.filters,))
            channels = blk.filters
    return out


def block_of(layer_name: str) -> int | None:
    """The block number (1-5) of a VGG16 layer name, or None for other layers."""
    m = re.match(r"^block([1-5])_", layer_name)
    return int(m.group(1)) if m else None


def trainable_blocks(config: RunConfig, phase: int) -> tuple[int, ...]:
    """Block numbers whose weights train in `phase`.

    With `base.trainable`, every block in both phases. Otherwise phase 1 trains none
    and phase 2 (when fine-tuning is on) the last `fine_tune.blocks`.
    """
    if config.base.trainable:
        return tuple(range(1, len(BLOCKS) + 1))
    if phase == 1 or not config.fine_tune.enabled:
        return ()
    return tuple(range(len(BLOCKS) - config.fine_tune.blocks + 1, len(BLOCKS) + 1))


# ---- memory -----------------------------------------------------------------
def activation_values_per_image(image_size: int) -> int:
    """Values in all VGG16 conv and pool outputs for one image (what training keeps)."""
    total, side = 0, image_size
    for blk in BLOCKS:
        total += len(blk.convs) * side * side * blk.filters
        side //= 2
        total += side * side * blk.filters
    return total


def batch_size_hint(image_size: int, free_bytes: int, mixed_precision: bool) -> int:
    """A batch size that fits `free_bytes` of GPU memory when training through the base.

    Counts activations, their gradients and scratch space (3 copies) at the compute
    width, plus weights and Adam's two moments in float32; keeps 30% in reserve. A
    power of two from 8 to 512. Training on cached features needs far less.
    """
    per_image = activation_values_per_image(image_size) * (2 if mixed_precision else 4) * 3
    weights = sum(k[0] * k[1] * k[2] * k[3] + b[0] for k, b in conv_shapes().values()) * 4 * 4
    budget = free_bytes * 0.7 - weights
    fits = max(1, int(budget // per_image))
    return int(min(512, max(8, 2 ** (fits.bit_length() - 1))))


# ---- parameter table -------------------------------------------------------
def _row(layer: str, block: str, kind: str, shape: tuple[int, ...], params: int,
         trainable_params: int, phase1: bool, phase2: bool) -> dict[str, Any]:
    return {"layer": layer, "block": block, "type": kind, "output_shape": shape,
            "params": params, "trainable_params": trainable_params,
            "trainable_phase1": phase1, "trainable_phase2": phase2}


def param_table(config: RunConfig, num_classes: int) -> list[dict[str, Any]]:
    """One row per layer of the model `tlcore.engine.model.build_model` builds, computed without TF.

    Args:
        config: The run config.
        num_classes: Number of classes of the dataset (at least 2).

    Returns:
        Rows in model order with keys `layer`, `block` ("preprocess", "block1".."block5"
        or "head"), `type` (Keras class name), `output_shape` (tuple without the batch
        dimension), `params` (all weights), `trainable_params` (weights that train when
        the layer is trainable: BatchNormalization's moving statistics never do),
        `trainable_phase1` and `trainable_phase2` (bool).

    Raises:
        ValueError: if `num_classes` is below 2.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2. "
                         f"Received: num_classes={num_classes!r}")
    size = config.image_size
    rows: list[dict[str, Any]] = []
    for field_name, layer, kind in AUGMENT_LAYERS:
        value = getattr(config.augment, field_name)
        if (value != "none") if field_name == "flip" else (value > 0):
            rows.append(_row(layer, "preprocess", kind, (size, size, 3), 0, 0, False, False))
    rows.append(_row(PREPROCESS_LAYER, "preprocess", "Conv2D", (size, size, 3), 12, 0,
                     False, False))

    phase1_blocks, phase2_blocks = trainable_blocks(config, 1), trainable_blocks(config, 2)
    channels = 3
    for number, blk in enumerate(BLOCKS, start=1):
        train1, train2 = number in phase1_blocks, number in phase2_blocks
        for conv in blk.convs:
            params = KERNEL_SIZE * KERNEL_SIZE * channels * blk.filters + blk.filters
            rows.append(_row(conv, blk.name, "Conv2D", (size, size, blk.filters), params,
                             params, train1, train2))
            channels = blk.filters
        size //= 2
        rows.append(_row(blk.pool, blk.name, "MaxPooling2D", (size, size, blk.filters), 0, 0,
                         train1, train2))

    head = config.head
    if head.pooling == "flatten":
        width = size * size * channels
        rows.append(_row("head_flatten", "head", "Flatten", (width,), 0, 0, True, True))
    else:
        width = channels
        kind = "GlobalAveragePooling2D" if head.pooling == "avg" else "GlobalMaxPooling2D"
        rows.append(_row(f"head_{head.pooling}_pool", "head", kind, (width,), 0, 0, True, True))
    for i, units in enumerate(head.dense, start=1):
        params = width * units + (0 if head.batchnorm else units)
        rows.append(_row(f"head_dense{i}", "head", "Dense", (units,), params, params, True, True))
        if head.batchnorm:
            rows.append(_row(f"head_bn{i}", "head", "BatchNormalization", (units,), 4 * units,
                             2 * units, True, True))
            rows.append(_row(f"head_act{i}", "head", "Activation", (units,), 0, 0, True, True))
        if head.dropout > 0:
            rows.append(_row(f"head_dropout{i}", "head", "Dropout", (units,), 0, 0, True, True))
        width = units
    params = width * num_classes + num_classes
    rows.append(_row(OUTPUT_LAYER, "head", "Dense", (num_classes,), params, params, True, True))
    return rows


def param_summary(config: RunConfig, num_classes: int) -> dict[str, int]:
    """Parameter counts of the model a config builds.

    Returns:
        `{"total", "trainable_phase1", "trainable_phase2", "frozen"}` where `frozen`
        is what never trains in phase 1 (the base unless `base.trainable`,
        preprocessing and BN statistics).
    """
    rows = param_table(config, num_classes)
    total = sum(r["params"] for r in rows)
    phase1 = sum(r["trainable_params"] for r in rows if r["trainable_phase1"])
    phase2 = sum(r["trainable_params"] for r in rows if r["trainable_phase2"])
    if not config.fine_tune.enabled:
        phase2 = 0
    return {"total": total, "trainable_phase1": phase1, "trainable_phase2": phase2,
            "frozen": total - phase1}


def max_params() -> int:
    """The most parameters a run's model may have: `$TLCORE_MAX_PARAMS` (default 200 M).

    Raises:
        ConfigError: if the variable is set but not a positive integer.
    """
    return env_number(ENV_MAX_PARAMS, DEFAULT_MAX_PARAMS,
                      "a positive number of parameters, e.g. 200000000",
                      parse=lambda raw: int(float(raw)))  # 2e8 reads as well as 200000000


def check_model_size(config: RunConfig, num_classes: int) -> dict[str, int]:
    """Refuse a config whose model has more than `max_params()` parameters.

    A flatten head on large images multiplies fast (512 px: 131,072 features into
    every unit of the first dense layer); such a model would exhaust memory and
    disk long before it trained.

    Returns:
        The model's `param_summary`.

    Raises:
        ConfigError: naming the parameter count, the limit and what shrinks the model.
    """
    summary = param_summary(config, num_classes)
    limit = max_params()
    if summary["total"] > limit:
        raise ConfigError(
            f"This model would have {summary['total']:,} parameters; the limit is {limit:,} "
            f"(${ENV_MAX_PARAMS}). Use head.pooling 'avg' or 'max', fewer head.dense units or "
            f"a smaller image_size. Received: image_size={config.image_size}, "
            f"head.pooling={config.head.pooling!r}, head.dense={list(config.head.dense)}")
    return summary


# ---- weights files -------------------------------------------------------
def _numeric_suffix(name: str) -> int:
    m = re.search(r"_(\d+)$", name)
    return int(m.group(1)) if m else 0


def _keras3_layers(root: h5py.Group) -> list[tuple[str | None, list[h5py.Dataset]]]:
    """Weighted layers of a Keras 3 `.weights.h5` group, nested models included."""
    out: list[tuple[str | None, list[h5py.Dataset]]] = []
    layers = root.get("layers")
    if not isinstance(layers, h5py.Group):
        return out
    # HDF5 lists `conv2d_10` before `conv2d_2`; Keras numbers objects in creation order.
    for key in sorted(layers, key=lambda k: (re.sub(r"_\d+$", "", k), _numeric_suffix(k))):
        group = layers[key]
        if not isinstance(group, h5py.Group):
            continue
        out.extend(_keras3_layers(group))
        variables = group.get("vars")
        if isinstance(variables, h5py.Group) and len(variables):
            arrays = [variables[k] for k in sorted(variables, key=int)]
            name = variables.attrs.get("name")
            out.append((name.decode() if isinstance(name, bytes) else name, arrays))
    return out


def _legacy_layers(root: h5py.Group) -> list[tuple[str | None, list[h5py.Dataset]]]:
    """Weighted layers of a legacy Keras 2 `.h5` group."""
    out: list[tuple[str | None, list[h5py.Dataset]]] = []
    for raw in root.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = root[name]
        names = [w.decode() if isinstance(w, bytes) else str(w)
                 for w in group.attrs.get("weight_names", [])]
        if names:
            out.append((name, [group[w] for w in names]))
    return out


def _match_vgg16(path: Path, layers: list[tuple[str | None, list[h5py.Dataset]]]
                 ) -> dict[str, list[h5py.Dataset]]:
    """Map the file's layers onto VGG16's conv layers (by name, else by order) and check shapes."""
    expected = conv_shapes()
    by_name = {name: arrays for name, arrays in layers if name in expected}
    if len(by_name) == len(expected):
        matched = by_name
    elif len(layers) == len(expected):
        matched = {conv: arrays for conv, (_, arrays) in zip(CONV_LAYERS, layers, strict=True)}
    else:
        raise WeightsError(
            f"{path} does not hold VGG16 convolutional weights: VGG16 without its top has "
            f"{len(expected)} weighted layers ({CONV_LAYERS[0]} .. {CONV_LAYERS[-1]}). "
            f"Received: {len(layers)} weighted layer(s), {len(by_name)} with VGG16 names. "
            "Use the notop file Keras downloads for VGG16(weights='imagenet', include_top=False)."
        )
    for conv, (kernel, bias) in expected.items():
        got = tuple(tuple(a.shape) for a in matched[conv])
        if got != (kernel, bias):
            raise WeightsError(
                f"{path} is not VGG16 notop weights: layer {conv} must have shapes "
                f"{kernel} and {bias}. Received: {got}. Use the notop file Keras downloads "
                "for VGG16(weights='imagenet', include_top=False)."
            )
    return matched


def _weights_format(f: h5py.File) -> str:
    if "layer_names" in f.attrs or "model_weights" in f:
        return "keras2"
    if "layers" in f:
        return "keras3"
    return "unknown"


def _open_layers(path: Path, f: h5py.File) -> dict[str, list[h5py.Dataset]]:
    fmt = _weights_format(f)
    if fmt == "keras2":
        root = f["model_weights"] if "model_weights" in f else f
        layers = _legacy_layers(root)
    elif fmt == "keras3":
        layers = _keras3_layers(f)
    else:
        raise WeightsError(
            f"{path} is an HDF5 file but not a Keras weights file: expected a Keras 3 "
            "`.weights.h5` (group 'layers') or a legacy Keras `.h5` (attribute 'layer_names'). "
            f"Received: top-level keys {sorted(f)[:8]}"
        )
    return _match_vgg16(path, layers)


def _refuse_outside_data(path: Path, f: h5py.File) -> None:
    """Refuse HDF5 features that read bytes from outside the file.

    External links, datasets with external storage and virtual datasets make h5py
    read other files on the server (any file the process may read) as if they were
    weights; a weights file must hold its own data.

    Raises:
        WeightsError: naming the first such object.
    """
    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink
              ) -> tuple[str, str] | None:
        # A non-None return stops the walk (raising inside h5py's callback is not safe).
        if isinstance(link, h5py.ExternalLink):
            return name, "an external link"
        if isinstance(link, h5py.HardLink) and isinstance(obj := f.get(name), h5py.Dataset):
            if obj.is_virtual:
                return name, "a virtual dataset"
            if obj.id.get_create_plist().get_external_count():
                return name, "a dataset with external storage"
        return None

    found = f.visititems_links(visit)
    if found:
        name, kind = found
        raise WeightsError(
            f"{path} is refused: {name!r} is {kind}, which reads data from other files. A "
            "weights file must hold its own data; use the file Keras saves or downloads."
        )


def _open(path: str | os.PathLike) -> tuple[Path, h5py.File]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"Weights file {path} does not exist. Give the path of a VGG16 notop weights "
            "file (.weights.h5 or .h5), or choose weights 'none'."
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(
            f"{path} cannot be read as an HDF5 weights file ({exc}). A VGG16 weights file is "
            "a Keras .weights.h5 or .h5 file; check that the download or upload is complete."
        ) from None
    try:
        _refuse_outside_data(path, f)
    except BaseException:
        f.close()
        raise
    return path, f


def check_weights_file(path: str | os.PathLike) -> str:
    """Check that `path` holds VGG16 notop weights with the right layer shapes.

    Only shapes are read, so this is quick even for the 58 MB file.

    Args:
        path: A Keras 3 `.weights.h5` or legacy Keras `.h5` file.

    Returns:
        The layout: "keras3" or "keras2".

    Raises:
        WeightsError: if the file is missing, unreadable, or not VGG16 notop weights.
    """
    path, f = _open(path)
    with f:
        _open_layers(path, f)
        return _weights_format(f)


def read_conv_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The 13 VGG16 conv layers' `[kernel, bias]` arrays from a weights file (either layout).

    Raises:
        WeightsError: as `check_weights_file`.
    """
    path, f = _open(path)
    with f:
        matched = _open_layers(path, f)
        return {name: [np.asarray(a[()], dtype=np.float32) for a in arrays]
                for name, arrays in matched.items()}


# ---- where weights come from -----------------------------------------------
def keras_cache_file() -> Path:
    """Where Keras caches the downloaded VGG16 notop weights ($KERAS_HOME or ~/.keras)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = Path("~").expanduser()
        home = str((base if os.access(base, os.W_OK) else Path("/tmp")) / ".keras")
    return Path(home) / "models" / KERAS_WEIGHTS_FILE


def _resolve(ws: Workspace) -> tuple[Path | None, str]:
    """The weights file to use for `imagenet` and where it came from."""
    env = os.environ.get(ENV_WEIGHTS, "").strip()
    if env:
        try:
            check_weights_file(env)
        except WeightsError as exc:
            raise WeightsError(f"{ENV_WEIGHTS} is set but unusable: {exc}") from None
        return Path(env).expanduser().resolve(), f"${ENV_WEIGHTS}"
    for candidate in sorted(ws.weights_dir.iterdir()):
        if candidate.suffix in WEIGHTS_SUFFIXES and candidate.is_file():
            try:
                check_weights_file(candidate)
            except WeightsError:
                continue  # a stray file must not block a good one next to it
            return candidate, "workspace weights folder"
    cached = keras_cache_file()
    if cached.is_file():
        try:
            check_weights_file(cached)
            return cached, "Keras cache"
        except WeightsError:
            pass  # e.g. a half-finished download; Keras will fetch it again
    return None, "download"


def resolve_imagenet_weights(ws: Workspace | None = None) -> Path | None:
    """The local file to use for `weights: imagenet`, or None when Keras must download it.

    Order: `$TLCORE_VGG16_WEIGHTS`; a `*.h5` file in the workspace's `weights/` folder
    that passes `check_weights_file`; Keras's cache file.

    Raises:
        WeightsError: if `$TLCORE_VGG16_WEIGHTS` is set but not a VGG16 notop file.
    """
    return _resolve(ws or Workspace.from_env())[0]


def offline_hint(ws: Workspace) -> str:
    """What to do when ImageNet weights cannot be downloaded."""
    return (
        f"Set {ENV_WEIGHTS} to a VGG16 notop weights file, or put one (e.g. {KERAS_WEIGHTS_FILE}"
        f" or a Keras 3 .weights.h5) in the workspace weights folder {ws.weights_dir}, "
        "or choose base.weights 'none' to train from random initialisation."
    )


def weights_status(ws: Workspace | None = None) -> dict[str, Any]:
    """Whether `weights: imagenet` will work without a download, for the UI.

    Returns:
        `{"available": bool, "path": str | None, "source": str, "message": str}`; when
        not available, `message` says what to do on a machine without internet.
    """
    ws = ws or Workspace.from_env()
    try:
        path, source = _resolve(ws)
    except WeightsError as exc:
        return {"available": False, "path": None, "source": "error", "message": str(exc)}
    if path is not None:
        return {"available": True, "path": str(path), "source": source,
                "message": f"ImageNet weights: {path} ({source})."}
    return {"available": False, "path": None, "source": source,
            "message": "No local ImageNet weights; Keras will download them (58 MB) when a run "
                       "starts. Without internet: " + offline_hint(ws)}


def save_weights_upload(data: bytes, filename: str, ws: Workspace | None = None) -> Path:
    """Store an uploaded VGG16 weights file in the workspace's `weights/` folder.

    The file is written to the workspace's tmp folder, checked, then moved into place
    atomically; a bad file leaves nothing behind. The stored name ends in `.weights.h5`
    for the Keras 3 layout and `.h5` for the legacy one, as Keras expects.

    Args:
        data: The file's bytes.
        filename: The uploaded file's name (only its stem is kept, sanitised).
        ws: The workspace.

    Returns:
        The stored file's path.

    Raises:
        WeightsError: if the data is not VGG16 notop weights.
    """
    ws = ws or Workspace.from_env()
    stem = Path(filename or "weights").name
    for suffix in (".weights.h5", ".h5", ".hdf5"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "weights"
    fd, tmp_name = tempfile.mkstemp(suffix=".h5", dir=ws.tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        try:
            fmt = check_weights_file(tmp)
        except WeightsError as exc:
            raise WeightsError(str(exc).replace(str(tmp), f"Uploaded file {filename!r}")) from None
        target = ws.weights_dir / (stem + (".weights.h5" if fmt == "keras3" else ".h5"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
