"""GPU slots of the local executor, on a fake device list (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import config_for, wait_for
from tlcore.errors import ConfigError
from tlcore.runs import launch, liveness, slots, warm
from tlcore.store import CANCELLED, QUEUED, RUNNING, RunStore


def _visible_devices(pid: int) -> str | None:
    """CUDA_VISIBLE_DEVICES in the environment process `pid` was started with."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        key, _, value = item.partition(b"=")
        if key == b"CUDA_VISIBLE_DEVICES":
            return value.decode()
    return None


def test_slots_come_from_tlcore_gpus_then_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("TLCORE_GPUS", "0, 2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert slots.gpu_slots() == ("0", "2")
    monkeypatch.setenv("TLCORE_GPUS", "GPU-3f2a-11,MIG-9")
    assert slots.gpu_slots() == ("GPU-3f2a-11", "MIG-9")
    monkeypatch.delenv("TLCORE_GPUS")
    assert slots.gpu_slots() == ("5",)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert slots.gpu_slots() == ()
    monkeypatch.setenv("TLCORE_GPUS", "none")
    assert slots.gpu_slots() == ()
    for bad in ("0,0", "zero", "0;1", "1,"):
        monkeypatch.setenv("TLCORE_GPUS", bad)
        with pytest.raises(ConfigError, match=r"TLCORE_GPUS must list distinct GPUs.*Received"):
            slots.gpu_slots()


def test_worker_limit_is_one_per_gpu_capped_by_max_workers(monkeypatch):
    monkeypatch.setenv("TLCORE_GPUS", "none")
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "3")
    assert slots.worker_limit() == 3  # no GPUs: as on a laptop
    monkeypatch.setenv("TLCORE_GPUS", "0,1,2,3")
    assert slots.worker_limit() == 3
    monkeypatch.delenv("TLCORE_MAX_WORKERS")
    assert slots.worker_limit() == 4


def test_occupancy_and_pinned_environment():
    running = [{"id": "a", "gpu": "1"}, {"id": "b", "gpu": None}]
    assert slots.occupancy(("0", "1"), running) == [("0", None), ("1", running[0])]
    assert slots.pinned_env("1") == {"CUDA_VISIBLE_DEVICES": "1", "TLCORE_GPU_SLOT": "1"}
    assert slots.pinned_env(None) == {}


def test_a_warm_worker_takes_only_runs_of_its_slot(ws):
    # A stand-in with a warm worker's command line: the hand-off needs no TensorFlow.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "tlcore.workers.run", warm.WARM_FLAG], start_new_session=True)
    try:
        warm.warm_idle_file(ws, proc.pid).write_text(warm.warm_key("tensorflow", "1"))
        assert warm.hand_to_warm("aaaaaaaaaaaa", ws, "tensorflow", None) is None
        assert warm.hand_to_warm("aaaaaaaaaaaa", ws, "tensorflow", "0") is None
        assert warm.hand_to_warm("aaaaaaaaaaaa", ws, "tensorflow", "1") == proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_two_gpu_slots_run_two_pinned_workers_and_the_third_waits(ws, dataset, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TLCORE_GPUS", "0,1")
    monkeypatch.delenv("TLCORE_MAX_WORKERS")
    store = RunStore(ws)
    mirrored = config_for(dataset, epochs=200).with_overrides({"train.distribute": "mirrored"})
    runs = [launch.launch(config, name=f"r{i}", ws=ws)
            for i, config in enumerate((config_for(dataset, epochs=200), mirrored,
                                        config_for(dataset, epochs=200)))]
    assert [store.get_run(r)["status"] for r in runs] == [RUNNING, RUNNING, QUEUED]
    first, second = (store.get_run(r) for r in runs[:2])
    assert (first["gpu"], second["gpu"]) == ("0", "1")
    # Each worker process sees only the GPU its run holds; a mirrored run sees them all.
    for run, visible in ((first, "0"), (second, "0,1")):
        wait_for(lambda run=run: store.progress(run["id"]), "the first batch")
        assert _visible_devices(run["pid"]) == visible
    assert store.get_run(runs[2])["status"] == QUEUED  # both slots are held

    assert launch.cancel(runs[0], ws, wait=liveness.CANCEL_GRACE_S) == CANCELLED
    wait_for(lambda: store.progress(runs[2]), "the third run to start")
    third = store.get_run(runs[2])
    assert third["gpu"] == first["gpu"]  # the freed slot, not the one still held
    assert _visible_devices(third["pid"]) == first["gpu"]
    for run_id in runs[1:]:
        assert launch.cancel(run_id, ws, wait=liveness.CANCEL_GRACE_S) == CANCELLED
