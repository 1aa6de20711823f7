"""Real services on this machine for tests (no mocks): a throwaway PostgreSQL server and a single-node SLURM.

Session-scoped fixtures; a test module imports the ones it uses (`from services import postgres_url`, as the
tests import fragile.py). Each starts its service with scripts/services/<name>.sh in a tmp dir, stops it after
the session, and skips the test with the script's one-line reason where the service cannot start (binaries
missing, not root, ...). .ci/run installs the Debian packages; locally: apt-get install postgresql slurm-wlm munge.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "services"


def _script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / f"{name}.sh"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _start(name: str, folder: Path) -> str:
    """Starts the service; returns the last line it printed, or skips with its reason."""
    try:
        proc = _script(name, "start", folder)
    except subprocess.TimeoutExpired:
        _stop(name, folder)
        pytest.skip(f"{name}: did not start in 120 s")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        pytest.skip(reason if reason.startswith(f"{name}.sh") else f"{name}.sh: {reason}")
    return lines[-1]


def _stop(name: str, folder: Path) -> None:
    proc = _script(name, "stop", folder)
    if proc.returncode != 0:
        warnings.warn(f"{name}.sh stop {folder}: {proc.stderr.strip()}", stacklevel=1)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """SQLAlchemy URL of a fresh PostgreSQL database: postgresql+psycopg2://dlexp:dlexp@127.0.0.1:<port>/dlexp."""
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver psycopg2 is not installed (psycopg2-binary)")
    folder = tmp_path_factory.mktemp("postgres")
    url = _start("postgres", folder)
    yield url
    _stop("postgres", folder)


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path  # slurm.conf, logs (log/), state and spool
    conf: Path  # the SLURM_CONF that points the slurm commands and submitit at this cluster
    env: dict[str, str]  # os.environ without inherited SLURM_* variables, with SLURM_CONF: for subprocess env=


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node SLURM cluster (node localhost, default partition debug). For submitit, which reads
    os.environ, set it there: monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))."""
    folder = tmp_path_factory.mktemp("slurm")
    line = _start("slurm", folder)
    conf = Path(line.removeprefix("export SLURM_CONF="))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | {"SLURM_CONF": str(conf)}
    yield SlurmCluster(folder=folder, conf=conf, env=env)
    _stop("slurm", folder)
