"""Who may do what: roles, actions, the roles file and the per-user run limit.

Three roles, each allowing the actions of the one before it:

    viewer  BROWSE: browse, compare, evaluate, predict and download exports
    member  also IMPORT (datasets), LAUNCH (runs, resumes, sweeps) and MANAGE_OWN
            (cancel, delete, rename, tag and annotate their own runs, datasets
            and sweeps)
    admin   also MANAGE_ALL (the same on everyone's) and SERVER_IMPORT (imports
            from paths on the server, weights files named by server path)

An `Actor` is who is using the studio: a signed-in user (`user` is their id, an
email), or `OPERATOR`, the local operator (user None, admin): the CLI, which runs on
the server itself, and the studio when no login is configured, which therefore
behaves exactly as before roles existed. Datasets, runs and sweeps record their
creator's `user` as `owner` (None for the operator).

Roles come from `<workspace>/roles.toml` and, for deployments that keep settings
in Streamlit's secrets, from a `[tlcore.roles]` table of `.streamlit/secrets.toml`
with the same keys (the UI passes that table in; the file's entries win):

    default = "viewer"          # role of a signed-in user not listed; default "member"

    [users]
    "alice@example.com" = "admin"
    "bob@example.com" = "member"

User ids compare without regard to case. A signed-in user who is listed nowhere
gets `default`.

`TLCORE_MAX_RUNS_PER_USER` (unset: no limit) caps how many runs one signed-in user
may have queued or running at once (`check_run_quota`); the operator has no limit.

This module imports neither Streamlit nor TensorFlow.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.errors import ConfigError, PermissionDeniedError, QuotaError
from tlcore.settings import env_number

if TYPE_CHECKING:
    from tlcore.store import RunStore
    from tlcore.workspace import Workspace

VIEWER, MEMBER, ADMIN = "viewer", "member", "admin"
ROLES = (VIEWER, MEMBER, ADMIN)
DEFAULT_ROLE = MEMBER

BROWSE = "browse"
IMPORT = "import"
LAUNCH = "launch"
MANAGE_OWN = "manage_own"
MANAGE_ALL = "manage_all"
SERVER_IMPORT = "server_import"
ACTIONS = (BROWSE, IMPORT, LAUNCH, MANAGE_OWN, MANAGE_ALL, SERVER_IMPORT)

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({BROWSE}),
    MEMBER: frozenset({BROWSE, IMPORT, LAUNCH, MANAGE_OWN}),
    ADMIN: frozenset(ACTIONS),
}

ROLES_FILE = "roles.toml"
MAX_RUNS_ENV = "TLCORE_MAX_RUNS_PER_USER"

# What each action lets a person do, for messages ("...; to <this>, you need ...").
_ACTION_WORDS = {
    BROWSE: "browse runs and datasets",
    IMPORT: "import a dataset",
    LAUNCH: "launch runs and sweeps",
    MANAGE_OWN: "change runs, datasets or sweeps",
    MANAGE_ALL: "change other people's runs, datasets or sweeps",
    SERVER_IMPORT: "use paths on the server",
}
_ROLE_CAN = {
    VIEWER: "Viewers can browse, compare, evaluate and predict",
    MEMBER: ("Members can browse, import, launch, and change their own runs, datasets and "
             "sweeps"),
}
# Actions on an existing object that someone else owns need MANAGE_ALL as well.
_OWNED_ACTIONS = frozenset({LAUNCH, MANAGE_OWN, MANAGE_ALL})
_ANY_OWNER: Any = object()
_ALLOWED_FILE = ('Allowed: default = "viewer", "member" or "admin", and a [users] table of '
                 '"email" = "role".')


@dataclass(frozen=True)
class Actor:
    """Who is using the studio.

    Attributes:
        user: The signed-in user's id (an email), recorded as the owner of what they
            create; None for the local operator.
        name: A name to show.
        role: One of ROLES.
    """

    user: str | None
    name: str | None
    role: str


OPERATOR = Actor(None, "operator", ADMIN)


def owner_label(owner: str | None) -> str:
    """An owner as shown to people: the user id, or "operator" for None."""
    return owner if owner is not None else "operator"


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ConfigError(f"action must be one of {', '.join(ACTIONS)}. Received: {action!r}")


def _same_user(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _needed(actor: Actor, action: str, owner: Any) -> str:
    """The action the actor's role must allow: MANAGE_ALL on someone else's object."""
    if (owner is not _ANY_OWNER and action in _OWNED_ACTIONS
            and not _same_user(owner, actor.user) and actor.role != ADMIN):
        return MANAGE_ALL
    return action


def can(actor: Actor, action: str, owner: str | None = _ANY_OWNER) -> bool:
    """Whether `actor` may do `action` (on an object owned by `owner`, when given).

    Without `owner`, only the role counts (may this role ever cancel a run?). With
    it, LAUNCH (a resume) and MANAGE_OWN/MANAGE_ALL on an object someone else owns
    need MANAGE_ALL, which only admins have; the operator's objects (owner None)
    belong to no signed-in user.

    Raises:
        ConfigError: on an unknown action.
    """
    _check_action(action)
    return _needed(actor, action, owner) in ROLE_ACTIONS.get(actor.role, frozenset())


def require(actor: Actor, action: str, owner: str | None = _ANY_OWNER, what: str = "",
            ws: Workspace | None = None) -> None:
    """Raise unless `actor` may do `action` (see `can`).

    Args:
        actor: Who asks.
        action: One of ACTIONS.
        owner: The owner of the object acted on, when there is one.
        what: What is asked, as a verb phrase for the message ("cancel this run");
            default a description of the action.
        ws: The workspace, to name its roles file in the message.

    Raises:
        PermissionDeniedError: with a one-line message saying who may do it.
        ConfigError: on an unknown action.
    """
    if can(actor, action, owner):
        return
    what = what or _ACTION_WORDS[action]
    who = f"you are signed in as {owner_label(actor.user)} ({actor.role})"
    needed = _needed(actor, action, owner)
    if needed == MANAGE_ALL and action != MANAGE_ALL and action in ROLE_ACTIONS.get(
            actor.role, frozenset()):
        raise PermissionDeniedError(
            f"Only its owner ({owner_label(owner)}) or an admin can {what}; {who}.")
    role = next(r for r in ROLES if needed in ROLE_ACTIONS[r])
    where = roles_file(ws) if ws is not None else f"{ROLES_FILE} in the workspace"
    can_do = _ROLE_CAN.get(actor.role, f"The role {actor.role!r} allows nothing")
    raise PermissionDeniedError(
        f"{can_do}; to {what}, you need the {role} role, and {who}. Ask an admin to change "
        f"your role in {where}.")


# ---- the roles file ---------------------------------------------------------------
_cache: dict[Path, tuple[int, int, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _parse_roles(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check a roles table; returns {"default": role or None, "users": {id: role}}.

    Raises:
        ConfigError: naming `source` and what is allowed.
    """
    unknown = sorted(set(raw) - {"default", "users"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}. {_ALLOWED_FILE}")
    default = raw.get("default")
    if default is not None and default not in ROLES:
        raise ConfigError(f"{source}: default must be one of {', '.join(ROLES)}. "
                          f"Received: default={default!r}")
    users = raw.get("users", {})
    if not isinstance(users, Mapping):
        raise ConfigError(f"{source}: users must be a table. {_ALLOWED_FILE} "
                          f"Received: users={users!r}")
    out = {}
    for user, role in users.items():
        if role not in ROLES:
            raise ConfigError(f"{source}: the role of {user!r} must be one of "
                              f"{', '.join(ROLES)}. Received: {role!r}")
        out[str(user).strip().casefold()] = role
    return {"default": default, "users": out}


def roles_file(ws: Workspace) -> Path:
    """The workspace's roles file (it may not exist)."""
    return ws.root / ROLES_FILE


def read_roles_file(ws: Workspace) -> dict[str, Any]:
    """The workspace's roles file, checked: {"default": role or None, "users": {id: role}}.

    Read again only when the file changes; a missing file is an empty table.

    Raises:
        ConfigError: when the file is unreadable, not TOML, or names an unknown role.
    """
    path = roles_file(ws)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {"default": None, "users": {}}
    except OSError as exc:
        raise ConfigError(f"Cannot read the roles file {path}: {exc.strerror or exc}.") from None
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"The roles file {path} is not valid TOML ({reason}). "
                          f"{_ALLOWED_FILE}") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the roles file {path}: {exc.strerror or exc}.") from None
    parsed = _parse_roles(raw, f"The roles file {path}")
    with _cache_lock:
        _cache[path] = (stat.st_mtime_ns, stat.st_size, parsed)
    return parsed


def role_for(user: str, ws: Workspace, secrets_roles: Mapping[str, Any] | None = None) -> str:
    """The role of signed-in user `user`.

    Args:
        user: The user's id (an email).
        ws: The workspace, whose `roles.toml` is read.
        secrets_roles: The `[tlcore.roles]` table of Streamlit's secrets, if any;
            the workspace file's entries win over it.

    Returns:
        The user's role from the file, else from the secrets, else the file's
        `default`, else the secrets' `default`, else "member".

    Raises:
        ConfigError: when the roles file or the secrets' table is malformed.
    """
    from_file = read_roles_file(ws)
    from_secrets = (_parse_roles(secrets_roles, "[tlcore.roles] in Streamlit's secrets")
                    if secrets_roles else {"default": None, "users": {}})
    key = user.strip().casefold()
    for table in (from_file, from_secrets):
        if key in table["users"]:
            return table["users"][key]
    return from_file["default"] or from_secrets["default"] or DEFAULT_ROLE


# ---- the per-user run limit -----------------------------------------------------------
def max_runs_per_user() -> int | None:
    """`$TLCORE_MAX_RUNS_PER_USER`: the most runs one user may have queued or running.

    Returns:
        The limit, or None when the variable is unset or empty (no limit).

    Raises:
        ConfigError: when it is set but not a positive integer.
    """
    return env_number(MAX_RUNS_ENV, None, "a positive integer, or empty for no limit",
                      parse=int)


def check_run_quota(store: RunStore, owner: str | None, adding: int = 1) -> None:
    """Refuse a new run when `owner` has the most runs queued or running already.

    Args:
        store: The run store.
        owner: The user the run would belong to; None (the operator) has no limit.
        adding: How many runs are about to be queued.

    Raises:
        QuotaError: when the limit would be passed.
        ConfigError: when TLCORE_MAX_RUNS_PER_USER is malformed.
    """
    limit = max_runs_per_user()
    if owner is None or limit is None:
        return
    active = store.count_active(owner)
    if active + adding <= limit:
        return
    runs = "run" if active == 1 else "runs"
    if active >= limit:
        raise QuotaError(
            f"You have {active} {runs} queued or running, the most one person may have at once "
            f"({MAX_RUNS_ENV}={limit}). Wait for one to finish or cancel one.")
    raise QuotaError(
        f"This queues {adding} runs and you have {active} {runs} queued or running, more "
        f"than the {limit} one person may have at once ({MAX_RUNS_ENV}={limit}). Queue fewer, "
        f"or wait for some to finish.")
