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
inside an allowed root (`check_server_path`). A dataset can also be created
empty and grown, and its classes and images edited (`edits`); each edit makes a
new immutable version, and runs read the version they trained on (`versions`).

The names below are the package's public API; the modules behind them are not.
This package never imports TensorFlow: the dashboard imports it.
"""

from tlcore.data.background import ImportStatus, forget_import, import_status, start_import
from tlcore.data.edits import (
    Added,
    add_class,
    add_images,
    apply_fixes,
    check_trainable,
    create_dataset,
    describe_skipped,
    hash_split,
    image_id,
    list_images,
    relabel_image,
    remove_class,
    remove_images,
    rename_class,
)
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
from tlcore.data.versions import (
    list_versions,
    pin_run,
    record_run_version,
    run_manifest,
    run_version,
)
from tlcore.entities import SPLITS
from tlcore.workspace import allowed_roots, check_server_path

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TEST",
    "DEFAULT_VAL",
    "IMAGES_DIR",
    "MANIFEST_NAME",
    "SPLITS",
    "Added",
    "ImportLimits",
    "ImportStatus",
    "ProgressFn",
    "add_class",
    "add_images",
    "allowed_roots",
    "apply_fixes",
    "check_server_path",
    "check_trainable",
    "create_dataset",
    "create_demo",
    "delete_dataset",
    "describe_skipped",
    "fingerprint",
    "forget_import",
    "hash_split",
    "health_report",
    "image_id",
    "import_dataset",
    "import_status",
    "list_datasets",
    "list_images",
    "list_versions",
    "load_manifest",
    "pin_run",
    "record_run_version",
    "relabel_image",
    "remove_class",
    "remove_images",
    "remove_stale_staging",
    "rename_class",
    "run_manifest",
    "run_version",
    "sample_files",
    "show_dataset",
    "split_counts",
    "start_import",
]
