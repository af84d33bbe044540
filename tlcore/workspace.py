"""Where things live: the workspace folder (TLCORE_HOME) and path helpers.

Layout (names are constants so every module agrees on them):

    <home>/tlcore.db          SQLite run store (WAL)
    <home>/datasets/<name>/   manifest.json + images/
    <home>/runs/<id>/         config.json, model.keras, history.csv, log.txt, ...
    <home>/cache/             decoded images and frozen-base features
    <home>/weights/           user-provided pretrained weights files
    <home>/tmp/               staging area; a failed import leaves nothing elsewhere
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
TMP_DIR = "tmp"

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
    def tmp_dir(self) -> Path:
        return self._sub(TMP_DIR)

    def dataset_dir(self, name: str) -> Path:
        """Folder of dataset `name` (validated; not created)."""
        return self.datasets_dir / check_dataset_name(name)

    def run_dir(self, run_id: str) -> Path:
        """Folder of run `run_id` (validated; not created)."""
        return self.runs_dir / check_run_id(run_id)
