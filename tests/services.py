"""Real services on this machine for tests (no mocks): a throwaway PostgreSQL server, a single-node SLURM and
an MLflow tracking server.

Session-scoped fixtures; a test module imports the ones it uses (`from services import postgres_url`, as the
tests import fragile.py). Each starts its service with scripts/services/<name>.sh in a tmp dir, stops it after
the session, and skips the test with the script's one-line reason where the service cannot start (binaries
missing, not root, ...). .ci/run installs the Debian packages; locally: apt-get install postgresql slurm-wlm munge.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The address of an `mlflow server` (from the project's environment) on a free local port, with a fresh
    SQLite store and artifacts it serves itself (mlflow-artifacts:/, as a remote server would)."""
    folder = tmp_path_factory.mktemp("mlflow")
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    if not os.path.exists(mlflow):
        pytest.skip("mlflow is not installed (uv sync)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", f"sqlite:///{folder}/db.sqlite", "--artifacts-destination", str(folder / "art")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes
    with open(folder / "server.log", "w") as out:
        proc = subprocess.Popen([mlflow, *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "server.log").read_text().strip().splitlines()  # a dependency: failing, not skipped
                pytest.fail(f"mlflow server did not start: {log[-1] if log else f'exit {proc.poll()}'}")
            time.sleep(0.5)
        yield url
    finally:
        try:  # the server and its uvicorn worker: the process group it started
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
