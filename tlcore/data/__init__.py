"""Datasets: import (zip, folder, CSV), safety limits, decoding, splits, health, manifest.

An import reads a zip, a server-side folder or a CSV of labelled images
(`sources`), under safety limits (`limits`, `TLCORE_MAX_*` environment
variables), decodes and stores every file with Pillow in a form that
`Image.open(p).convert("RGB")` reads correctly (`decode`), splits it once per
import, stratified per class and seeded (`splits`), reports on its health
(`health`), and writes `datasets/<name>/manifest.json` (`manifest`). The import
pipeline itself (`importer`) stages everything and leaves nothing behind when it
refuses or fails; staging folders of killed imports are removed later
(`staging`). Imports started from the browser run in their own process
(`background`, and `tlcore.workers.data_import`), and paths typed there must lie
inside an allowed root (`check_server_path`).

The names below are the package's public API; the modules behind them are not.
This package never imports TensorFlow: the dashboard imports it.
"""

from tlcore.data.background import ImportStatus, forget_import, import_status, start_import
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
from tlcore.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, split_counts
from tlcore.data.staging import remove_stale as remove_stale_staging
from tlcore.entities import SPLITS
from tlcore.workspace import allowed_roots, check_server_path

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TEST",
    "DEFAULT_VAL",
    "IMAGES_DIR",
    "MANIFEST_NAME",
    "SPLITS",
    "ImportLimits",
    "ImportStatus",
    "ProgressFn",
    "allowed_roots",
    "check_server_path",
    "create_demo",
    "delete_dataset",
    "fingerprint",
    "forget_import",
    "health_report",
    "import_dataset",
    "import_status",
    "list_datasets",
    "load_manifest",
    "remove_stale_staging",
    "sample_files",
    "show_dataset",
    "split_counts",
    "start_import",
]
