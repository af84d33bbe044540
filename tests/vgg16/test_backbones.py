"""VGG16 facts without TensorFlow: parameter table, weights files, weights resolution."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, WeightsError
from tlcore.vgg16 import backbones

VGG16_NOTOP_PARAMS = 14_714_688  # keras.applications.VGG16(include_top=False).count_params()
BIAS1 = np.arange(64, dtype=np.float32) / 100


def _cfg(**data) -> RunConfig:
    return RunConfig.from_dict({"dataset": "d", "base": {"weights": "none"}, **data})


def write_keras3(path, *, names: bool = True, shapes: dict | None = None) -> None:
    """A Keras 3 `.weights.h5` layout with VGG16 notop shapes (data unallocated except one bias)."""
    shapes = {**backbones.conv_shapes(), **(shapes or {})}
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        layers.create_group("input_layer").create_group("vars")
        for i, conv in enumerate(backbones.CONV_LAYERS):
            variables = layers.create_group("conv2d" + (f"_{i}" if i else "")).create_group("vars")
            if names:
                variables.attrs["name"] = conv
            kernel, bias = shapes[conv]
            variables.create_dataset("0", shape=kernel, dtype="f4")
            if conv == "block1_conv1" and bias == (64,):
                variables.create_dataset("1", data=BIAS1)
            else:
                variables.create_dataset("1", shape=bias, dtype="f4")
        for i in range(5):
            layers.create_group("max_pooling2d" + (f"_{i}" if i else "")).create_group("vars")
        f.create_group("vars")


def write_legacy(path, *, nested: bool = False) -> None:
    """A legacy Keras 2 `.h5` layout (the file Keras downloads), optionally under model_weights."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nested else f
        pools = [b.pool for b in backbones.BLOCKS]
        root.attrs["layer_names"] = [n.encode() for n in ("input_1", *backbones.CONV_LAYERS,
                                                          *pools)]
        root.create_group("input_1").attrs["weight_names"] = []
        for pool in pools:
            root.create_group(pool).attrs["weight_names"] = []
        for conv, (kernel, bias) in backbones.conv_shapes().items():
            group = root.create_group(conv)
            names = [f"{conv}_W_1:0", f"{conv}_b_1:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group.create_dataset(names[0], shape=kernel, dtype="f4")
            if conv == "block1_conv1":
                group.create_dataset(names[1], data=BIAS1)
            else:
                group.create_dataset(names[1], shape=bias, dtype="f4")


@pytest.fixture
def no_weights_env(monkeypatch, tmp_path):
    """No env var or Keras cache may provide weights."""
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


# ---- the table -------------------------------------------------------------------
def test_vgg16_blocks_and_shapes():
    assert [b.name for b in backbones.BLOCKS] == [f"block{i}" for i in range(1, 6)]
    assert len(backbones.CONV_LAYERS) == 13
    shapes = backbones.conv_shapes()
    assert shapes["block1_conv1"] == ((3, 3, 3, 64), (64,))
    assert shapes["block5_conv3"] == ((3, 3, 512, 512), (512,))
    total = sum(int(np.prod(k)) + int(np.prod(b)) for k, b in shapes.values())
    assert total == VGG16_NOTOP_PARAMS
    assert backbones.block_of("block4_pool") == 4 and backbones.block_of("head_dense1") is None


def test_param_table_default_recipe():
    config = _cfg(image_size=150)
    rows = backbones.param_table(config, 2)
    by_name = {r["layer"]: r for r in rows}
    assert rows[0]["layer"] == backbones.PREPROCESS_LAYER and rows[0]["params"] == 12
    assert by_name["block5_pool"]["output_shape"] == (4, 4, 512)
    assert by_name["head_flatten"]["output_shape"] == (8192,)
    assert by_name["head_dense1"]["params"] == 8192 * 256 + 256
    assert by_name["predictions"]["params"] == 257 * 2
    assert {r["block"] for r in rows} == {"preprocess", "head", *(b.name for b in backbones.BLOCKS)}
    summary = backbones.param_summary(config, 2)
    head = 8192 * 256 + 256 + 257 * 2
    assert summary == {"total": VGG16_NOTOP_PARAMS + 12 + head, "trainable_phase1": head,
                       "trainable_phase2": 0, "frozen": VGG16_NOTOP_PARAMS + 12}


def test_param_table_fine_tune_batchnorm_and_augment():
    config = _cfg(image_size=64, head={"pooling": "avg", "dense": [32, 16], "batchnorm": True,
                                       "dropout": 0.0},
                  fine_tune={"blocks": 1, "epochs": 2}, augment={"flip": "horizontal",
                                                                 "zoom": 0.1})
    rows = backbones.param_table(config, 3)
    names = [r["layer"] for r in rows]
    assert names[:3] == ["augment_flip", "augment_zoom", backbones.PREPROCESS_LAYER]
    assert "head_dropout1" not in names and "head_act2" in names
    bn = next(r for r in rows if r["layer"] == "head_bn1")
    assert bn["params"] == 4 * 32 and bn["trainable_params"] == 2 * 32
    assert next(r for r in rows if r["layer"] == "head_dense1")["params"] == 512 * 32  # no bias
    trainable2 = {r["block"] for r in rows if r["trainable_phase2"]}
    assert trainable2 == {"block5", "head"}
    block5 = 3 * (9 * 512 * 512 + 512)
    head = 512 * 32 + 2 * 32 + 32 * 16 + 2 * 16 + 17 * 3
    summary = backbones.param_summary(config, 3)
    assert summary["trainable_phase1"] == head
    assert summary["trainable_phase2"] == head + block5


def test_param_table_trainable_base_trains_every_block_from_phase_one():
    config = _cfg(base={"weights": "none", "trainable": True})
    rows = backbones.param_table(config, 2)
    base = [r for r in rows if r["block"].startswith("block")]
    assert base and all(r["trainable_phase1"] for r in base)
    assert backbones.trainable_blocks(config, 1) == (1, 2, 3, 4, 5)
    summary = backbones.param_summary(config, 2)
    assert summary["trainable_phase1"] == summary["total"] - 12  # all but preprocessing
    assert summary["frozen"] == 12
    # Weights none alone keeps the random base frozen, as configs written before did.
    frozen = backbones.param_summary(_cfg(base={"weights": "none"}), 2)
    assert frozen["frozen"] == VGG16_NOTOP_PARAMS + 12


def test_param_table_rejects_one_class():
    with pytest.raises(ValueError, match="num_classes"):
        backbones.param_table(_cfg(), 1)


def test_model_size_limit_refuses_runaway_heads_and_keeps_sensible_ones(monkeypatch):
    flatten = {"pooling": "flatten", "dense": [256]}
    assert backbones.check_model_size(_cfg(image_size=150, head=flatten), 2)["total"] == (
        pytest.approx(16.8e6, rel=0.01))
    assert backbones.check_model_size(_cfg(image_size=512, head=flatten), 2)["total"] == (
        pytest.approx(48.3e6, rel=0.01))
    huge = _cfg(image_size=512, head={"pooling": "flatten", "dense": [8192]})
    total = backbones.param_summary(huge, 2)["total"]
    assert total > 10**9  # 16 x 16 x 512 = 131,072 features into each of 8192 units
    with pytest.raises(ConfigError) as info:
        backbones.check_model_size(huge, 2)
    message = str(info.value)
    assert message.startswith(f"This model would have {total:,} parameters; the limit is "
                              "200,000,000 ($TLCORE_MAX_PARAMS).")
    assert "Received: image_size=512, head.pooling='flatten', head.dense=[8192]" in message
    assert backbones.check_model_size(_cfg(image_size=512, head={"pooling": "avg",
                                                                 "dense": [8192]}), 2)
    monkeypatch.setenv(backbones.ENV_MAX_PARAMS, "2e9")
    assert backbones.check_model_size(huge, 2)["total"] == total
    for bad in ("lots", "0", "-1", "nan"):
        monkeypatch.setenv(backbones.ENV_MAX_PARAMS, bad)
        with pytest.raises(ConfigError, match="TLCORE_MAX_PARAMS must be a positive number"):
            backbones.max_params()


# ---- weights files ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["keras3", "keras3-unnamed", "keras2", "keras2-nested"])
def test_weights_file_layouts(tmp_path, layout):
    path = tmp_path / "w.h5"
    if layout.startswith("keras3"):
        write_keras3(path, names=layout == "keras3")
    else:
        write_legacy(path, nested=layout.endswith("nested"))
    assert backbones.check_weights_file(path) == layout.split("-")[0]
    weights = backbones.read_conv_weights(path)
    assert list(weights) == list(backbones.CONV_LAYERS)
    np.testing.assert_array_equal(weights["block1_conv1"][1], BIAS1)
    assert weights["block5_conv3"][0].shape == (3, 3, 512, 512)


def test_wrong_shapes_are_refused(tmp_path):
    path = tmp_path / "w.weights.h5"
    write_keras3(path, shapes={"block3_conv2": ((3, 3, 256, 128), (128,))})
    with pytest.raises(WeightsError, match=r"block3_conv2 .*\(3, 3, 256, 256\).*Received"):
        backbones.check_weights_file(path)


def test_unusable_files_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        backbones.check_weights_file(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(WeightsError, match="cannot be read"):
        backbones.check_weights_file(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="not a Keras weights file"):
        backbones.check_weights_file(other)
    few = tmp_path / "few.h5"
    with h5py.File(few, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense").attrs["weight_names"] = [b"k"]
        f["dense"].create_dataset("k", shape=(2, 2))
    with pytest.raises(WeightsError, match="13 weighted layers"):
        backbones.check_weights_file(few)


def _swap_bias(path, make) -> None:
    """Replace block1_conv1's bias in a legacy file with `make(group, name)`."""
    with h5py.File(path, "r+") as f:
        group = f["block1_conv1"]
        name = "block1_conv1_b_1:0"
        del group[name]
        make(group, name)


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_weights_that_read_other_files_are_refused(tmp_path, kind):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"server secret".ljust(256, b"\0"))
    path = tmp_path / "w.h5"
    write_legacy(path)
    if kind == "external storage":
        _swap_bias(path, lambda g, n: g.create_dataset(n, shape=(64,), dtype="f4",
                                                       external=[(str(secret), 0, 256)]))
    elif kind == "external link":
        other = tmp_path / "other.h5"
        with h5py.File(other, "w") as f:
            f.create_dataset("b", data=np.zeros(64, "f4"))
        _swap_bias(path, lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(other), "b")))
    else:
        other = tmp_path / "other.h5"
        with h5py.File(other, "w") as f:
            f.create_dataset("b", data=np.zeros(64, "f4"))
        layout = h5py.VirtualLayout(shape=(64,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "b", shape=(64,))
        _swap_bias(path, lambda g, n: g.create_virtual_dataset(n, layout))
    with pytest.raises(WeightsError, match="reads data from other files"):
        backbones.check_weights_file(path)
    with pytest.raises(WeightsError, match="reads data from other files"):
        backbones.read_conv_weights(path)


# ---- where weights come from -------------------------------------------------------
def test_resolution_order(ws, tmp_path, monkeypatch, no_weights_env):
    assert backbones.resolve_imagenet_weights(ws) is None
    status = backbones.weights_status(ws)
    assert not status["available"]
    assert backbones.ENV_WEIGHTS in status["message"] and str(ws.weights_dir) in status["message"]

    cached = backbones.keras_cache_file()
    assert str(cached).startswith(str(tmp_path / "keras_home"))
    cached.parent.mkdir(parents=True)
    write_legacy(cached)
    assert backbones.resolve_imagenet_weights(ws) == cached

    (ws.weights_dir / "a_broken.h5").write_bytes(b"junk")  # skipped, not fatal
    local = ws.weights_dir / "b_vgg16.weights.h5"
    write_keras3(local)
    assert backbones.resolve_imagenet_weights(ws) == local
    assert backbones.weights_status(ws)["source"] == "workspace weights folder"

    env_file = tmp_path / "env.weights.h5"
    write_keras3(env_file)
    monkeypatch.setenv(backbones.ENV_WEIGHTS, str(env_file))
    assert backbones.resolve_imagenet_weights(ws) == env_file.resolve()

    monkeypatch.setenv(backbones.ENV_WEIGHTS, str(tmp_path / "nope.h5"))
    with pytest.raises(WeightsError, match=f"{backbones.ENV_WEIGHTS} is set but unusable"):
        backbones.resolve_imagenet_weights(ws)
    assert backbones.weights_status(ws)["available"] is False


def test_save_weights_upload(ws, tmp_path):
    src = tmp_path / "src.h5"
    write_keras3(src)
    stored = backbones.save_weights_upload(src.read_bytes(), "My VGG (1).h5", ws)
    assert stored.parent == ws.weights_dir and stored.name == "My_VGG_1.weights.h5"
    assert backbones.check_weights_file(stored) == "keras3"
    legacy = tmp_path / "legacy.h5"
    write_legacy(legacy)
    assert backbones.save_weights_upload(legacy.read_bytes(), "k.h5", ws).name == "k.h5"

    before = sorted(p.name for p in ws.weights_dir.iterdir())
    with pytest.raises(WeightsError, match="Uploaded file 'bad.h5'"):
        backbones.save_weights_upload(b"\x89HDF-not-really", "bad.h5", ws)
    assert sorted(p.name for p in ws.weights_dir.iterdir()) == before
    assert list(ws.tmp_dir.iterdir()) == []


def test_ui_modules_do_not_import_tensorflow():
    code = ("import sys, tlcore.vgg16.backbones, tlcore.runs.launch, tlcore.cli.runs, "
            "tlcore.config.advice; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_batch_size_hint_shrinks_with_image_size_and_grows_with_memory():
    from tlcore.vgg16.backbones import activation_values_per_image, batch_size_hint

    # block1 at 224 px alone: two convs of 224*224*64 values.
    assert activation_values_per_image(224) > 2 * 224 * 224 * 64
    gib = 2**30
    h224 = batch_size_hint(224, 16 * gib, mixed_precision=False)
    assert h224 & (h224 - 1) == 0  # a power of two
    assert batch_size_hint(64, 16 * gib, False) > h224
    assert batch_size_hint(224, 80 * gib, False) > h224
    assert batch_size_hint(224, 16 * gib, True) >= h224
    assert batch_size_hint(224, 1, False) == 8  # never below 8
