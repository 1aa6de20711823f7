"""The product as a user installs it: build the wheel, install it into a fresh venv outside the
repository, and train, tabulate a sweep and evaluate from an empty working directory."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build and install the wheel")


def sh(*args, cwd, env=None, timeout=900):
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, args))}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path, cache_dir):
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    sh("uv", "build", "--wheel", "-o", str(dist), cwd=ROOT)
    wheel = next(dist.glob("dlexp-*.whl"))
    # The locked versions of the dependencies (from uv's cache), then the wheel itself.
    pins = sh("uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", cwd=ROOT).stdout
    (tmp_path / "pins.txt").write_text(pins)
    sh("uv", "venv", "--python", sys.executable, str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    sh("uv", "pip", "install", "--python", python, "-r", str(tmp_path / "pins.txt"), cwd=tmp_path)
    sh("uv", "pip", "install", "--python", python, "--no-deps", str(wheel), cwd=tmp_path)

    # PYTHONDONTWRITEBYTECODE dropped: the venv is installed without bytecode, so each of the
    # commands below would compile the ~1,400 modules it imports again (about 3 s of CPU each).
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(DLEXP_CACHE=cache_dir, PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    run_dir = work / "runs" / "one"
    sh(
        "dlexp-train",
        "model=cnn",
        "model.channels=[4]",
        "model.dense=[8]",
        "trainer.steps=4",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=work,
        env=env,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4
    assert dlexp_imported_from(python, env) == str(venv)  # not the repository's code

    sh(
        "dlexp-train",
        "-m",
        "model=mlp",
        "dataset=wine",
        "optimizer.lr=1e-3,3e-3",
        "trainer.steps=2",
        "trainer.progress=false",
        "hydra.sweep.dir=sweep",
        cwd=work,
        env=env,
    )
    table = sh("dlexp-sweep", "sweep", cwd=work, env=env)
    assert (work / "sweep" / "results.csv").exists() and "optimizer.lr" in table.stdout + table.stderr

    result = json.loads(sh("dlexp-evaluate", str(run_dir), cwd=work, env=env).stdout)
    assert result["metrics"]["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-5)
    assert "Config groups" in sh("dlexp-train", "--help", cwd=work, env=env).stdout


def dlexp_imported_from(python: str, env: dict) -> str:
    out = sh(python, "-c", "import dlexp, sys; print(dlexp.__file__); print(sys.prefix)", cwd="/", env=env).stdout
    path, prefix = out.split()
    assert path.startswith(prefix), path
    return prefix
