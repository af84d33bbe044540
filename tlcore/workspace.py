"""Where things live: the workspace folder (TLCORE_HOME) and path helpers.

Layout (names are constants so every module agrees on them):

    <home>/tlcore.db          SQLite run store (WAL), and the sweeps' Optuna studies
    <home>/datasets/<name>/   manifest.json + images/
    <home>/runs/<id>/         one run's files, named by `RunFiles` (`Workspace.run(id)`)
    <home>/cache/             decoded images, frozen-base features, assembled models
    <home>/bases/<key>/       frozen VGG16 bases, each stored once by fingerprint
    <home>/workers/           warm workers: <pid>.idle, <pid>.run (inbox), <pid>.log;
                              sweep workers: <pid>.trial (the run it trains)
    <home>/sweeps/<id>.log    a sweep's workers' own output
    <home>/weights/           user-provided pretrained weights files
    <home>/import/            folders and CSVs to import from the browser
    <home>/tmp/               staging area; a failed import leaves nothing elsewhere

Paths typed in the browser (a folder or CSV to import, a weights file) must lie
inside an allowed root (`check_server_path`): by default the workspace's
`weights/` and `import/` folders, or the os.pathsep-separated list in
$TLCORE_SERVER_ROOTS. The command line may name any path.

Large writes (checkpoints, models, cached arrays) go through `space_for`, which
keeps `$TLCORE_MIN_FREE_MB` free on the disk, so the run store can still record
why a run failed when the disk fills up.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tlcore.errors import ConfigError, DiskFullError, NotFoundError, WeightsError
from tlcore.settings import at_least_zero, env_number

ENV_HOME = "TLCORE_HOME"
DEFAULT_HOME = "workspace"
DB_NAME = "tlcore.db"
DATASETS_DIR = "datasets"
RUNS_DIR = "runs"
CACHE_DIR = "cache"
BASES_DIR = "bases"
WORKERS_DIR = "workers"
WEIGHTS_DIR = "weights"
IMPORT_DIR = "import"
TMP_DIR = "tmp"
ENV_SERVER_ROOTS = "TLCORE_SERVER_ROOTS"

ENV_MIN_FREE_MB = "TLCORE_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 200.0
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What `keras.Model.save` puts in a `.keras` zip: both of these and one weights file.
KERAS_ZIP_ENTRIES = ("metadata.json", "config.json")
KERAS_ZIP_WEIGHTS = ("model.weights.h5", "model.weights.npz")

# Matched whole (`fullmatch`): `$` would also accept a trailing newline.
DATASET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RUN_ID_RE = re.compile(r"[a-z0-9]{6,32}")
RUN_NAME_MAX = 120
# Unicode categories no name may contain: control characters (Cc: newline, tab, the
# escape that starts terminal sequences, ...) and the line and paragraph separators.
CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")


def has_control_characters(text: str) -> bool:
    """Whether `text` holds a control character or a line or paragraph separator.

    Such a character in a name breaks the one-line output of the CLI, or moves
    the cursor and recolours a terminal that prints it.

    Args:
        text: A name (run, class, dataset).

    Returns:
        True when any character of `text` is in `CONTROL_CATEGORIES`.
    """
    return any(unicodedata.category(c) in CONTROL_CATEGORIES for c in text)


def check_dataset_name(name: str) -> str:
    """Return `name` if it is a valid dataset name, else raise ConfigError."""
    if not isinstance(name, str) or not DATASET_NAME_RE.fullmatch(name) or ".." in name:
        raise ConfigError(
            "A dataset name must be 1-64 characters of letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit. Received: name={name!r}"
        )
    return name


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it looks like a run id, else raise ConfigError."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise ConfigError(
            f"A run id is 6-32 lowercase letters or digits. Received: run_id={run_id!r}"
        )
    return run_id


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` (UTF-8, exactly as given) through a temp file and `os.replace`.

    A reader sees the old file or the new one, never half of one.
    """
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. half written on a full disk
        raise


# ---- disk space ----------------------------------------------------------------
def min_free_bytes() -> int:
    """The free space large writes leave on the disk: `$TLCORE_MIN_FREE_MB` (default 200 MB).

    Raises:
        ConfigError: if the variable is set but not a number of megabytes (0 or more).
    """
    value = env_number(ENV_MIN_FREE_MB, DEFAULT_MIN_FREE_MB, "a number of megabytes, 0 or more",
                       valid=at_least_zero)
    return int(value * 1e6)


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full_error(path: Path) -> DiskFullError:
    """The one error of every write that ran out of space under `path`."""
    return DiskFullError(
        f"disk full: {free_bytes(path) / 1e6:.0f} MB free in {path} (writes keep "
        f"{min_free_bytes() / 1e6:.0f} MB free, ${ENV_MIN_FREE_MB}). Free some space, e.g. "
        "`python -m tlcore cache clear` or delete old runs, then try again.")


def is_no_space(exc: BaseException) -> bool:
    """Whether `exc` is the operating system saying the disk (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def check_free_space(path: Path, nbytes: int = 0) -> None:
    """Refuse a write of about `nbytes` under `path` that would leave less than the reserve.

    Raises:
        DiskFullError: if `free_bytes(path) - nbytes < min_free_bytes()`.
    """
    if free_bytes(path) - nbytes < min_free_bytes():
        raise disk_full_error(path)


@contextmanager
def space_for(path: Path, nbytes: int) -> Iterator[None]:
    """Guard a write of about `nbytes` under folder `path`.

    Refuses the write up front (`check_free_space`), and turns an out-of-space
    `OSError` inside the block into the same `DiskFullError`, so a full disk fails
    the run with one clear line instead of a traceback, and leaves the run store
    room to record it. The guarded block removes its own temp files on failure.

    Raises:
        DiskFullError: in both cases.
    """
    check_free_space(path, nbytes)
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            raise disk_full_error(path) from None
        raise


def allocate(path: Path, nbytes: int) -> None:
    """Reserve disk blocks for the first `nbytes` of the file at `path`.

    A file written through a memory map (`np.lib.format.open_memmap`) starts
    sparse; running out of space while filling it kills the process with SIGBUS
    instead of raising. Allocating first turns that into an `OSError` (ENOSPC)
    here, which `space_for` reports.
    """
    if not hasattr(os, "posix_fallocate"):
        return  # macOS: only the free-space check of `space_for` applies
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if is_no_space(exc):
            raise
        # EINVAL, EOPNOTSUPP, ...: the file system cannot preallocate; the check stands.
    finally:
        os.close(fd)


# ---- run files -------------------------------------------------------------------
def check_keras_file(path: Path, name: str) -> Path:
    """Check without TensorFlow that `path` is a complete `.keras` zip; return `path`.

    Reads the zip's central directory and the local header of each model entry:
    a truncated or overwritten file fails here with a plain message instead of
    Keras's "File not found".

    Args:
        path: The `.keras` file.
        name: How the message names it (e.g. `runs/<id>/model.keras`).

    Raises:
        NotFoundError: if the file does not exist.
        WeightsError: if it is not a readable Keras model zip.
    """
    if not path.is_file():
        raise NotFoundError(f"{name} does not exist; train the run again.")
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            entries = {info.filename: info for info in zf.infolist()}
            weights = [w for w in KERAS_ZIP_WEIGHTS if w in entries]
            missing = [e for e in KERAS_ZIP_ENTRIES if e not in entries]
            if missing or not weights:
                raise zipfile.BadZipFile(
                    f"no {' or '.join(missing or KERAS_ZIP_WEIGHTS)} in the zip")
            for entry in (*KERAS_ZIP_ENTRIES, weights[0]):
                info = entries[entry]
                if info.header_offset + info.compress_size > size:
                    raise zipfile.BadZipFile(f"{entry} ends past the end of the file")
                with zf.open(info) as fh:  # checks the entry's local header
                    fh.read(1)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise WeightsError(f"{name} is unreadable (truncated or corrupt): {detail}; "
                           "train the run again.") from None
    return path


@dataclass(frozen=True)
class RunFiles:
    """The files and folders of one run, `runs/<id>/` (paths only; nothing is created).

    Every name under a run's folder is spelled here and nowhere else; existing
    workspaces depend on them, so they do not change.

    Attributes:
        dir: The run's folder.
    """

    dir: Path

    @property
    def id(self) -> str:
        """The run id (the folder's name)."""
        return self.dir.name

    @property
    def config(self) -> Path:
        """`config.json`: the run config, written once at launch."""
        return self.dir / "config.json"

    @property
    def log(self) -> Path:
        """`log.txt`: the worker's stdout and stderr."""
        return self.dir / "log.txt"

    @property
    def model(self) -> Path:
        """`model.keras`: the full model, written by runs trained before light runs.

        Newer runs store only `trained` and `base_ref`; `tlcore.engine.runmodel`
        assembles the full model from them on demand.
        """
        return self.dir / "model.keras"

    @property
    def trained(self) -> Path:
        """`trained.npz`: the best weights of the layers the run trained, by layer name."""
        return self.dir / "trained.npz"

    @property
    def base_ref(self) -> Path:
        """`base.json`: the fingerprint of the frozen base in `<home>/bases/` the run uses."""
        return self.dir / "base.json"

    def has_model(self) -> bool:
        """Whether the run has a model: its trained weights, or an older full `model.keras`."""
        return self.trained.is_file() or self.model.is_file()

    def check_model(self) -> Path:
        """`model.keras`, checked to be a complete Keras model zip (no TensorFlow).

        Raises:
            NotFoundError: if it does not exist.
            WeightsError: if it is truncated or corrupt.
        """
        return check_keras_file(self.model, f"{RUNS_DIR}/{self.id}/{self.model.name}")

    @property
    def history(self) -> Path:
        """`history.csv`: one row of metrics per epoch."""
        return self.dir / "history.csv"

    @property
    def checkpoint_dir(self) -> Path:
        """`checkpoint/`: the last epoch's weights and training state, for resume."""
        return self.dir / "checkpoint"

    @property
    def checkpoint_state(self) -> Path:
        """`checkpoint/state.json`: the training state; it names the weights file."""
        return self.checkpoint_dir / "state.json"

    def checkpoint_weights(self, epoch: int) -> Path:
        """`checkpoint/weights-e<epoch>.npz`: trained weights and optimizer state after `epoch`.

        Runs trained before light runs hold every weight of the model here instead.
        """
        return self.checkpoint_dir / f"weights-e{epoch}.npz"

    @property
    def test_metrics(self) -> Path:
        """`test_metrics.json`: loss, accuracy and size of the test split."""
        return self.dir / "test_metrics.json"

    @property
    def class_names(self) -> Path:
        """`class_names.json`: the class name of each model output, in order."""
        return self.dir / "class_names.json"

    @property
    def dataset_version(self) -> Path:
        """`dataset.json`: the dataset and the version of it the run trains on."""
        return self.dir / "dataset.json"

    @property
    def eval_dir(self) -> Path:
        """`eval/`: stored evaluations and their Grad-CAM overlays."""
        return self.dir / "eval"

    def evaluation(self, dataset: str) -> Path:
        """`eval/<dataset>.json`: the stored evaluation on `dataset` (validated name)."""
        return self.eval_dir / f"{check_dataset_name(dataset)}.json"

    def gradcam_dir(self, dataset: str) -> Path:
        """`eval/gradcam/<dataset>/`: one folder of overlays per evaluation on `dataset`."""
        return self.eval_dir / "gradcam" / check_dataset_name(dataset)

    @property
    def exports_dir(self) -> Path:
        """`exports/`: model zips prepared for download."""
        return self.dir / "exports"

    def export_zip(self, fmt: str) -> Path:
        """`exports/<id>-<fmt>.zip`: the run's model exported in format `fmt`."""
        return self.exports_dir / f"{self.id}-{fmt}.zip"


def check_run_name(name: str) -> str:
    """A run's display name without surrounding whitespace, if it is valid.

    Run names are free text: any letters, spaces and punctuation, but no control
    characters (see `has_control_characters`).

    Args:
        name: The name as typed.

    Returns:
        `name.strip()`.

    Raises:
        ConfigError: if the stripped name is empty, longer than `RUN_NAME_MAX`
            characters or holds a control character.
    """
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > RUN_NAME_MAX or has_control_characters(text):
        raise ConfigError(f"A run name must be 1-{RUN_NAME_MAX} characters without control "
                          f"characters (newlines, tabs, escape sequences). Received: name={name!r}")
    return text


@dataclass(frozen=True)
class Workspace:
    """A workspace folder. Folders are created on first use."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None) -> Workspace:
        """The workspace at `root`, else $TLCORE_HOME, else ./workspace."""
        path = Path(root or os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def datasets_dir(self) -> Path:
        return self._sub(DATASETS_DIR)

    @property
    def runs_dir(self) -> Path:
        return self._sub(RUNS_DIR)

    @property
    def cache_dir(self) -> Path:
        return self._sub(CACHE_DIR)

    @property
    def workers_dir(self) -> Path:
        return self._sub(WORKERS_DIR)

    @property
    def bases_dir(self) -> Path:
        return self._sub(BASES_DIR)

    @property
    def weights_dir(self) -> Path:
        return self._sub(WEIGHTS_DIR)

    @property
    def import_dir(self) -> Path:
        return self._sub(IMPORT_DIR)

    @property
    def tmp_dir(self) -> Path:
        return self._sub(TMP_DIR)

    def dataset_dir(self, name: str) -> Path:
        """Folder of dataset `name` (validated; not created)."""
        return self.datasets_dir / check_dataset_name(name)

    def run(self, run_id: str) -> RunFiles:
        """The files of run `run_id` (validated id; nothing is created)."""
        return RunFiles(self.runs_dir / check_run_id(run_id))


def allowed_roots(ws: Workspace) -> list[Path]:
    """Folders whose contents paths typed in the browser may name, resolved.

    $TLCORE_SERVER_ROOTS (os.pathsep-separated) when set, else the workspace's
    `weights/` and `import/` folders.
    """
    raw = os.environ.get(ENV_SERVER_ROOTS, "")
    roots = ([Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()] if raw.strip()
             else [ws.weights_dir, ws.import_dir])
    return [root.resolve() for root in roots]


def check_server_path(path: str | os.PathLike, ws: Workspace) -> Path:
    """The resolved `path` when it lies inside an allowed root (see `allowed_roots`).

    For paths typed in the browser: `~` is expanded, a relative path is taken
    relative to the workspace folder, then symbolic links and `..` are resolved
    before the check, so neither leads out of the roots. The refusal is the same
    whether or not the path exists, and names only the allowed roots.

    Raises:
        ConfigError: The path is empty, cannot be resolved, or lies outside every
            allowed root.
    """
    roots = allowed_roots(ws)
    text = os.fspath(path).strip()
    try:
        resolved = (ws.root / Path(text).expanduser()).resolve() if text else None
    except (OSError, RuntimeError, ValueError):
        resolved = None  # a symlink loop or a NUL byte: refused like any other path
    if resolved is None or not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise ConfigError(
            f"Only paths inside {shown} can be used from the browser; put the folder or "
            f"file under {ws.import_dir} (weights files under {ws.weights_dir}) or ask the "
            f"operator to allow its root with {ENV_SERVER_ROOTS}. Received: path={text!r}")
    return resolved
