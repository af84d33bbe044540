"""Datasets: import (zip, folder, CSV), safety limits, decoding, splits, health, manifest.

An import reads a zip, a server-side folder or a CSV of labelled images
(`sources`), under safety limits (`limits`, `TLCORE_MAX_*` environment
variables), decodes and stores every file with Pillow in a form that
`Image.open(p).convert("RGB")` reads correctly (`decode`), splits it once per
import, stratified per class and seeded (`splits`), reports on its health
(`health`), and writes `datasets/<name>/manifest.json` (`manifest`). The import
pipeline itself (`importer`) stages everything and leaves nothing behind when it
refuses or fails.

The names below are the package's public API; the modules behind them are not.
This package never imports TensorFlow: the dashboard imports it.
"""

from tlcore.data.health import health_report
from tlcore.data.importer import ProgressFn, create_demo, import_dataset
from tlcore.data.limits import ImportLimits
from tlcore.data.manifest import (
    IMAGES_DIR,
    MANIFEST_NAME,
    delete_dataset,
    fingerprint,
    list_datasets,
    load_manifest,
    sample_files,
    show_dataset,
)
from tlcore.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, SPLITS, split_counts

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TEST",
    "DEFAULT_VAL",
    "IMAGES_DIR",
    "MANIFEST_NAME",
    "SPLITS",
    "ImportLimits",
    "ProgressFn",
    "create_demo",
    "delete_dataset",
    "fingerprint",
    "health_report",
    "import_dataset",
    "list_datasets",
    "load_manifest",
    "sample_files",
    "show_dataset",
    "split_counts",
]
