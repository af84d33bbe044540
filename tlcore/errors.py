"""Errors raised by tlcore.

Every message says what was wrong, what is allowed and what was received, so
the CLI can print it as one line and the UI can show it with `st.error`.
Subclasses also inherit the fitting built-in so callers may catch either.
"""


class TLCoreError(Exception):
    """Base class of every error tlcore raises on purpose."""


class ConfigError(TLCoreError, ValueError):
    """A run config (or an override) is invalid."""


class DatasetError(TLCoreError, ValueError):
    """A dataset import was refused, or a dataset cannot be used."""


class NotFoundError(TLCoreError, KeyError):
    """A named dataset, run or file does not exist."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


class WeightsError(TLCoreError, RuntimeError):
    """Pretrained weights or a run's saved model are missing, unreadable or of the wrong shape."""


class DiskFullError(TLCoreError, OSError):
    """The workspace's disk has too little free space for a write (see `TLCORE_MIN_FREE_MB`)."""


class RunStateError(TLCoreError, RuntimeError):
    """An action does not fit the run's current status (e.g. resume a running run)."""


class RunCancelled(RunStateError):
    """The run's cancel flag was seen; training stopped at the next batch."""


class StoreError(TLCoreError, RuntimeError):
    """The run store's database cannot be read or written (corrupt, locked, disk full)."""


class ClusterError(TLCoreError, ConnectionError):
    """The compute cluster (Ray) cannot be reached or refused a request."""


class DivergedError(TLCoreError, FloatingPointError):
    """Training diverged: the loss became nan or inf, or exploded."""


class PermissionDeniedError(TLCoreError, PermissionError):
    """The signed-in user's role does not allow an action (see `tlcore.auth`)."""


class QuotaError(RunStateError):
    """A user already has the most runs queued or running that one person may have."""
