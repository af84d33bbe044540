"""The adaptation lab's test workspace: tiny colour domains and one real, short source run.

Built once per test session (`lab_home`, registered in tests/conftest.py) and
shared by the adaptation, CLI and page tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.runs import config_for, wait_for
from tlcore import data as datasets_api
from tlcore.runs import launch
from tlcore.store import COMPLETED, FAILED, RunStore
from tlcore.workspace import Workspace

COLOURS = {"red": (200, 50, 50), "green": (50, 190, 60), "blue": (60, 70, 210)}
SIZE = 32


def write_domain(root: Path, per_class: int, seed: int, *, invert: bool = False,
                 labeled: bool = True) -> Path:
    """Noisy squares of one colour per class; `invert` makes the shifted domain."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name if labeled else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 30, (SIZE, SIZE, 3)), 0, 255)
            if invert:
                pixels = 255 - pixels
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}-{seed}-{i}.png")
    return root


LAB_ENV = {"TLCORE_MAX_WORKERS": "1", "TLCORE_WARM_WORKERS": "0"}
UNSET = ("KERAS_BACKEND", "TLCORE_DB_URL", "TLCORE_EXECUTOR", "TLCORE_GPUS")


def lab_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("TLCORE_HOME", str(home))
    for key, value in LAB_ENV.items():
        mp.setenv(key, value)
    for key in UNSET:
        mp.delenv(key, raising=False)


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory) -> tuple[Path, str]:
    """Built once: a workspace with a completed source run on "colours", a same-domain
    target, a shifted one ("inverted", labels hidden) and an unlabeled one."""
    root = tmp_path_factory.mktemp("adapt")
    home = root / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        lab_env(mp, home)
        ws = Workspace.from_env(home)
        for name, seed, invert, labeled in (("colours", 0, False, True),
                                            ("same", 1, False, True),
                                            ("inverted", 2, True, True),
                                            ("unlabeled", 3, True, False)):
            folder = write_domain(root / f"src-{name}", 16, seed, invert=invert,
                                  labeled=labeled)
            datasets_api.import_dataset(folder, name, ws=ws, unlabeled=not labeled)
        run_id = launch.launch(config_for("colours", epochs=2), ws=ws)
        store = RunStore(ws)
        status = wait_for(lambda: store.get_run(run_id)["status"] in (COMPLETED, FAILED)
                          and store.get_run(run_id)["status"], "the source run")
        assert status == COMPLETED, store.get_run(run_id)["error"]
    return home, run_id


@pytest.fixture
def lab(lab_home, monkeypatch) -> tuple[Workspace, str]:
    """`(ws, source run id)` of the shared lab workspace, exported as TLCORE_HOME."""
    home, run_id = lab_home
    lab_env(monkeypatch, home)
    return Workspace.from_env(home), run_id


@pytest.fixture(scope="session")
def shifted(lab_home) -> dict:
    """The report of adapting the source run to "inverted" with every method."""
    from tlcore.adapt import adapt

    home, run_id = lab_home
    with pytest.MonkeyPatch.context() as mp:
        lab_env(mp, home)
        return adapt(run_id, "inverted", ws=Workspace.from_env(home))
