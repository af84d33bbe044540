"""Fixtures of the run-lifecycle tests."""

from __future__ import annotations

import pytest

from tlcore import data as datasets_api
from tlcore.data.demo import write_class_folders


@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b", "c"), per_class=10, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"
