"""Where a run's VGG16 conv weights come from: ImageNet, a file, an earlier run, or none.

`load_base_weights(config, ws)` returns the conv weights a config names, by
layer name, before any model is built: ImageNet weights from a local file or a
download that fails fast when the machine is offline, a weights file (checked
by h5py in `tlcore.vgg16.backbones`), or `run:<id>` (checked by
`tlcore.vgg16.sources`, the same check the launch makes). `tlcore.engine.model`
builds the network around them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import keras
import numpy as np

from tlcore.config import RunConfig
from tlcore.engine.kerasfile import load_keras_file
from tlcore.errors import TLCoreError, WeightsError
from tlcore.vgg16 import backbones, bases, sources
from tlcore.workspace import Workspace, space_for

# Seconds to wait for the download host before declaring the machine offline.
PROBE_TIMEOUT_S = 5.0
# Socket timeout while downloading, so a stalled transfer fails instead of hanging.
DOWNLOAD_TIMEOUT_S = 60.0
DOWNLOAD_CHUNK = 1 << 20


def _reachable(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection opens within `timeout`, DNS included (it has no timeout)."""
    ok = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return ok.is_set()


def _download_imagenet(ws: Workspace, progress: Callable[[int, int], None] | None = None
                       ) -> Path:
    """Download the VGG16 notop weights into Keras's cache, failing fast when offline.

    The file arrives in chunks, each reported to `progress(done, total)` (the
    worker's heartbeat), goes to a temp file first, and must match Keras's MD5.
    """
    url = backbones.VGG16_NOTOP_URL
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not _reachable(parsed.hostname or "", port, PROBE_TIMEOUT_S):
        raise WeightsError(
            f"ImageNet weights for VGG16 are not available locally and {parsed.hostname} "
            f"cannot be reached to download them (no network?). {backbones.offline_hint(ws)}"
        )
    target = backbones.keras_cache_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0)
            digest = hashlib.md5(usedforsecurity=False)
            done = 0
            with space_for(target.parent, total), open(part, "wb") as out:
                while chunk := response.read(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        if digest.hexdigest() != backbones.KERAS_WEIGHTS_MD5:
            raise ValueError(f"the file's MD5 is {digest.hexdigest()}, expected "
                             f"{backbones.KERAS_WEIGHTS_MD5}")
        os.replace(part, target)
    except TLCoreError:
        raise
    except Exception as exc:  # any download failure gets the same way out
        raise WeightsError(
            f"Downloading the VGG16 ImageNet weights from {url} failed ({exc}). "
            f"{backbones.offline_hint(ws)}"
        ) from None
    finally:
        part.unlink(missing_ok=True)
    return target


def conv_weights(model: keras.Model) -> bases.LayerWeights:
    """The model's VGG16 conv weights by layer name (what a base stores)."""
    base = model.get_layer(backbones.BACKBONE_NAME)
    return {name: [np.asarray(w) for w in base.get_layer(name).get_weights()]
            for name in backbones.CONV_LAYERS}


def _conv_weights_of_run(run_id: str, ws: Workspace) -> bases.LayerWeights:
    """The conv weights of run `run_id`'s model: its base with its trained blocks on top.

    Raises:
        NotFoundError, RunStateError, WeightsError: as `sources.check_run_source`, and
            WeightsError when the run's files cannot be read.
    """
    files = sources.check_run_source(run_id, ws)
    try:
        if files.trained.is_file():
            return sources.run_conv_weights(files, ws)
        return conv_weights(load_keras_file(files.model))  # a run trained before light runs
    except TLCoreError as exc:
        raise WeightsError(f"base.weights 'run:{run_id}' cannot be used: {exc}") from None


def base_weights_source(config: RunConfig, ws: Workspace | None = None) -> str:
    """Where `build_base` takes the conv weights from, in words (recorded with the run).

    Raises:
        WeightsError: if `$TLCORE_VGG16_WEIGHTS` is set but unusable.
    """
    ws = ws or Workspace.from_env()
    weights = config.base.weights
    if weights == "none":
        return f"random init (seed {config.train.seed})"
    if weights == "imagenet":
        path = backbones.resolve_imagenet_weights(ws)
        return f"imagenet: {path}" if path else "imagenet: Keras download"
    if config.base.source.kind == "run":
        return f"run {config.base.source.run_id}"
    return f"file: {Path(weights).expanduser()}"


def load_base_weights(config: RunConfig, ws: Workspace | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> dict[str, list[np.ndarray]] | None:
    """The VGG16 conv weights a config asks for, by layer name (None for `none`).

    Args:
        config: The run config.
        ws: The workspace.
        progress: Optional callback `(bytes done, total)` while ImageNet weights download.

    Raises:
        WeightsError: if ImageNet weights are neither local nor downloadable, or a
            weights file is missing or of the wrong shape.
        NotFoundError, RunStateError: for `run:<id>` naming a missing or unfinished run.
    """
    ws = ws or Workspace.from_env()
    weights = config.base.weights
    if weights == "none":
        return None
    if weights == "imagenet":
        path = backbones.resolve_imagenet_weights(ws) or _download_imagenet(ws, progress)
        return backbones.read_conv_weights(path)
    if config.base.source.kind == "run":
        return _conv_weights_of_run(config.base.source.run_id, ws)
    return backbones.read_conv_weights(weights)
