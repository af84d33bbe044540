"""Which Keras backend computes (TensorFlow, JAX or PyTorch), and its devices.

Keras 3 runs the same model on each backend; it picks one from `$KERAS_BACKEND`
when it is first imported, so a process chooses before anything imports Keras:
a worker gets `KERAS_BACKEND` from `runs.children.worker_env` (the run's
`train.backend`; "auto" is `$KERAS_BACKEND` or TensorFlow), and `activate` checks it.

The rest of tlcore speaks Keras ops. What differs per backend lives in one
small place per concern:

* devices and GPU memory: `configure_devices` here (TensorFlow memory growth;
  JAX without preallocating the card; PyTorch allocates as it goes), and
  `train.distribute`'s strategy over every device (`strategy`, TensorFlow);
* the data feed and compiled inference: `tlcore.engine.feed`;
* the gradient for Grad-CAM: `tlcore.engine.gradcam`;
* the per-epoch compiled head training on cached features: `tlcore.engine.fastfit`
  (TensorFlow; other backends use Keras's `fit`, jit-compiled on JAX);
* SavedModel and TFLite export: `tlcore.results.export` (needs TensorFlow installed).

This module imports no framework at import time, so the dashboard can use it.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from typing import Any

import numpy as np

from tlcore.errors import ConfigError
from tlcore.settings import env_number

ENV = "KERAS_BACKEND"
# Splits the CPU into this many logical TensorFlow devices, so that a run with
# `train.distribute: mirrored` spans several replicas on a machine without GPUs.
ENV_CPU_DEVICES = "TLCORE_CPU_DEVICES"
MAX_CPU_DEVICES = 64
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"
AUTO = "auto"
# JAX's compiled-program cache in the workspace (`compile_cache`) stays under this size.
JAX_CACHE_MAX_BYTES = 1 << 30
# Words shown beside each backend where a person picks one.
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
INSTALL_HINT = {
    "tensorflow": "pip install tensorflow==2.21.0 (the version in requirements.txt)",
    "jax": 'pip install "jax[cpu]" (or "jax[cuda12]" on NVIDIA GPUs)',
    "torch": "pip install torch (see pytorch.org for the build that matches your GPU)",
}


def default() -> str:
    """The backend "auto" means here: `$KERAS_BACKEND` when it names one, else TensorFlow."""
    name = os.environ.get(ENV, "").strip().lower()
    return name if name in BACKENDS else DEFAULT


def resolve(setting: str | None) -> str:
    """A run's `train.backend` ("auto" or None: `default()`) as a backend name.

    Raises:
        ConfigError: for a name that is not a Keras backend.
    """
    name = (setting or AUTO).strip().lower()
    if name == AUTO:
        return default()
    if name not in BACKENDS:
        raise ConfigError(f"train.backend must be auto, {', '.join(BACKENDS)}. "
                          f"Received: {setting!r}")
    return name


def check_distribute(distribute: str, setting: str | None) -> None:
    """Refuse a `train.distribute` that the backend `setting` resolves to cannot run.

    Args:
        distribute: The run's `train.distribute`.
        setting: Its `train.backend` ("auto" resolves here, see `resolve`).

    Raises:
        ConfigError: for "mirrored" on JAX or PyTorch.
    """
    name = resolve(setting)
    if distribute == "none" or name == "tensorflow":
        return
    given = (setting or AUTO).strip().lower()
    got = name if given == name else f"{given}, which is {name} here"
    raise ConfigError(f"train.distribute {distribute!r} uses TensorFlow's MirroredStrategy; set "
                      f"train.backend to tensorflow (or auto), or train.distribute to none. "
                      f"Received: train.backend={got}")


def cpu_devices() -> int:
    """How many logical devices TensorFlow splits the CPU into: `$TLCORE_CPU_DEVICES`, default 1.

    Raises:
        ConfigError: if the variable is set but not a whole number from 1 to
            `MAX_CPU_DEVICES`.
    """
    return env_number(ENV_CPU_DEVICES, 1, f"a whole number from 1 to {MAX_CPU_DEVICES}",
                      parse=int, valid=lambda n: 1 <= n <= MAX_CPU_DEVICES)


def installed(name: str) -> bool:
    """Whether the framework of backend `name` can be imported here (without importing it)."""
    return importlib.util.find_spec(name) is not None


def available() -> list[str]:
    """The backends whose framework is installed here, TensorFlow first."""
    return [name for name in BACKENDS if installed(name)]


def require(name: str) -> None:
    """Fail with what to install when backend `name`'s framework is missing.

    Raises:
        ConfigError: if it is not installed.
    """
    if not installed(name):
        raise ConfigError(
            f"train.backend {name} needs {LABELS[name]}, which is not installed here: "
            f"{INSTALL_HINT[name]}, or pick one of: {', '.join(available()) or 'none'}.")


def environment(name: str) -> dict[str, str]:
    """Environment variables a process needs to compute on backend `name`.

    JAX would otherwise take 75% of every GPU's memory at its first operation, and
    TensorFlow all of it; one worker per GPU shares nothing, but a probe or an
    evaluation beside a run must still find room.
    """
    env = {ENV: name}
    if name == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    elif name == "tensorflow":
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


def activate(name: str) -> None:
    """Make this process compute on backend `name`; call it before Keras is imported.

    Raises:
        ConfigError: if the framework is missing, or Keras was already imported
            with another backend (a process keeps its first backend).
    """
    require(name)
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise ConfigError(
            f"This process already computes with {keras.backend.backend()}; a "
            f"{name} run needs its own process (KERAS_BACKEND={name}).")
    for key, value in environment(name).items():
        if key == ENV:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)


# What TensorFlow and Keras import when it is installed although a worker on `name`
# never uses it: TFLite's JAX helpers, Keras's pandas adapters (about 0.6 s of each
# worker start on this kind of CPU), and JAX on the other backends. PyTorch stays
# importable: Keras imports scikit-learn when it is installed, whose SciPy reads
# `sys.modules["torch"]` and fails on a blocked one.
UNUSED_IN_WORKER = {"tensorflow": ("jax", "pandas"), "jax": ("pandas",),
                    "torch": ("jax", "pandas")}


def skip_unused_imports(name: str) -> None:
    """Make the frameworks a worker on backend `name` never uses unimportable here.

    Their importers treat them as optional (`try: import jax`), so they carry on
    without them. Only for worker processes, before Keras is imported; a module
    already imported stays.
    """
    for module in UNUSED_IN_WORKER.get(name, ()):
        sys.modules.setdefault(module, None)


def current() -> str:
    """The backend of this process's Keras (imports Keras)."""
    import keras

    return keras.backend.backend()


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed` without importing TensorFlow on the other backends.

    Keras's own seeds TensorFlow whenever it is installed, which would import it
    (seconds, and its GPU runtime) into a JAX or PyTorch process.
    """
    import keras

    if current() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # another Keras layout: its own function, TensorFlow and all
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if current() == "torch":
        import torch

        torch.manual_seed(seed)


def compile_cache(folder: os.PathLike) -> None:
    """Keep JAX's compiled programs in `folder`, so the next process skips XLA compiling.

    A run's train and inference steps take their weights as arguments, so every
    run of the same model shape and batch size reuses them: seconds saved per run
    on a CPU. Bounded by `JAX_CACHE_MAX_BYTES`. No-op on the other backends.
    """
    if current() != "jax":
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)


def configure_devices() -> dict[str, Any]:
    """Prepare the GPUs of the current backend and describe what training will use.

    Call it first in a process, before any computation: TensorFlow's memory
    growth and its logical CPU devices (`$TLCORE_CPU_DEVICES`) cannot change
    after its first operation.

    Returns:
        `{"device": "CPU" or GPU names joined, "gpus": [names], "mixed_precision":
        bool, "backend": name, "backends": [installed names]}` where
        `mixed_precision` is what `train.mixed_precision: auto` resolves to.
    """
    name = current()
    names = _gpus(name)
    return {"device": ", ".join(names) if names else "CPU", "gpus": names,
            "mixed_precision": bool(names), "backend": name, "backends": available()}


def strategy(distribute: str) -> Any:
    """The `tf.distribute` strategy of `train.distribute`, or None for "none".

    "mirrored" mirrors the model on every visible GPU, or on the CPU's logical
    devices when there is no GPU (one unless `$TLCORE_CPU_DEVICES` splits it):
    a machine with one device trains with a one-replica strategy. Call
    `configure_devices` first.

    Raises:
        ConfigError: for "mirrored" when this process does not compute with TensorFlow.
    """
    if distribute == "none":
        return None
    check_distribute(distribute, current())
    import tensorflow as tf

    devices = (tf.config.list_logical_devices("GPU")
               or tf.config.list_logical_devices("CPU"))
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def has_gpu() -> bool:
    """Whether the current backend computes on a GPU."""
    return bool(_gpus(current()))


def _gpus(name: str) -> list[str]:
    if name == "tensorflow":
        import tensorflow as tf

        _split_cpu(tf)
        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialised in this process; growth cannot change any more
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name") or gpu.name)
        return names
    if name == "jax":
        import jax

        return [getattr(d, "device_kind", str(d)) for d in jax.devices()
                if d.platform == "gpu"]
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _split_cpu(tf: Any) -> None:
    """Split the CPU into `cpu_devices()` logical devices, before TensorFlow initialises them."""
    count = cpu_devices()
    if count == 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        pass  # already initialised in this process (a warm worker's second run): kept as it is
