"""The sweeper against real services started on 127.0.0.1 (tests/services.py): an Optuna study on
PostgreSQL shared by two sweeper processes at once, and a sweep submitted through SLURM's sbatch.
One module, so one pytest worker starts each service once."""

import subprocess

from conftest import QUICK_MLP, start_cli
from services import postgres_url, slurm_cluster  # noqa: F401  (fixtures)

from dlexp import sweep

TINY = QUICK_MLP


def start(args, cwd, cache_dir, env=None):
    return start_cli(args, cwd, cache_dir, env=env, stderr=subprocess.PIPE)


def test_two_sweepers_share_one_optuna_study_on_postgresql(postgres_url, tmp_path, cache_dir):  # noqa: F811
    import optuna

    search = [
        "-m",
        *TINY,
        f"hydra.sweeper.storage={postgres_url}",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.batch=2",
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
    ]
    procs = [start([*search, f"hydra.sweep.dir={tmp_path / name}"], tmp_path, cache_dir) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(8))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    values = sorted(round(t.value, 9) for t in trials)
    jobs = sweep.collect([str(tmp_path / "a"), str(tmp_path / "b")])
    assert sorted(round(v, 9) for v in jobs.get_column("objective").to_list()) == values  # each trial is one job


def test_a_sweep_goes_through_slurm_and_its_table_is_complete(slurm_cluster, tmp_path, cache_dir):  # noqa: F811
    args = [
        "-m",
        "launcher=submitit_slurm",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        *TINY,
        "model.dropout=0.0,0.2",  # two groups: two SLURM jobs
        "optimizer.lr=3e-3,-1",  # one job of each group fails alone
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    p = start(args, tmp_path, cache_dir, env=slurm_cluster.env)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 1, err[-3000:]  # a job failed; the others ran
    table = sweep.collect([str(tmp_path / "sweep")]).sort("job")
    assert table.height == 4
    assert table.get_column("status").to_list().count("completed") == 2
    failed = table.filter(table["status"] == "failed").get_column("error").to_list()
    assert all("optimizer.lr=-1 must be a positive number" in e for e in failed)
    logs = list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    assert logs, "no SLURM job logs: the jobs did not go through sbatch"
