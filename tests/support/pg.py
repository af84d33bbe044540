"""A throwaway PostgreSQL cluster for the store's tests (pytest fixtures).

`pg_cluster` (session) starts one with Debian's binaries (`initdb`, `pg_ctl`; as the
`postgres` user when the tests run as root, since initdb refuses root) in a temp dir,
listening on 127.0.0.1 only, and removes it at the end. `pg_url` (per test) creates a
fresh database, points TLCORE_DB_URL at it and drops it afterwards. Without the
binaries, tests that use them skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "tlcore-test-secret"
INSTALL_HINT = "PostgreSQL is not installed: apt-get install postgresql (Debian)"


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A running PostgreSQL cluster: its superuser's URL without a database."""

    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) as superuser."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             password=PASSWORD, dbname="postgres", autocommit=True) as con:
            con.execute(sql)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole session, removed at its end."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip(INSTALL_HINT)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="tlcore-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "log.txt"
    (root / "pw").write_text(PASSWORD)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, text=True)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile",
            str(root / "pw"), "--auth=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync")
        # Durability off: the cluster lives for one test session.
        options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
            "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        log_text = log.read_text() if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}{log_text}") from exc
    try:
        yield Cluster(port)
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database, exported as TLCORE_DB_URL (for subprocesses too); dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_cluster.admin(f"CREATE DATABASE {name}")
    url = pg_cluster.url(name)
    monkeypatch.setenv("TLCORE_DB_URL", url)
    try:
        yield url
    finally:
        # FORCE ends the connections this process's engine still pools.
        pg_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
