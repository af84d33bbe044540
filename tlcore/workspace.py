"""Where things live: the workspace folder (TLCORE_HOME) and path helpers.

Layout (names are constants so every module agrees on them):

    <home>/tlcore.db          SQLite run store (WAL)
    <home>/datasets/<name>/   manifest.json + images/
    <home>/runs/<id>/         one run's files, named by `RunFiles` (`Workspace.run(id)`)
    <home>/cache/             decoded images and frozen-base features
    <home>/weights/           user-provided pretrained weights files
    <home>/import/            folders and CSVs to import from the browser
    <home>/tmp/               staging area; a failed import leaves nothing elsewhere

Paths typed in the browser (a folder or CSV to import, a weights file) must lie
inside an allowed root (`check_server_path`): by default the workspace's
`weights/` and `import/` folders, or the os.pathsep-separated list in
$TLCORE_SERVER_ROOTS. The command line may name any path.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tlcore.errors import ConfigError

ENV_HOME = "TLCORE_HOME"
DEFAULT_HOME = "workspace"
DB_NAME = "tlcore.db"
DATASETS_DIR = "datasets"
RUNS_DIR = "runs"
CACHE_DIR = "cache"
WEIGHTS_DIR = "weights"
IMPORT_DIR = "import"
TMP_DIR = "tmp"
ENV_SERVER_ROOTS = "TLCORE_SERVER_ROOTS"

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
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


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
        """`model.keras`: the full model with the best weights so far."""
        return self.dir / "model.keras"

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
        """`checkpoint/weights-e<epoch>.npz`: the model's weights after `epoch`."""
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
