"""MLflow for real: a sweep logged to an `mlflow server` beside TensorBoard (logger=[tensorboard,mlflow]),
read back through MlflowClient; a run with copies in the local SQLite store; a tracking URI nothing answers."""

import pytest
from conftest import read_json
from services import free_port, mlflow_server  # noqa: F401  (fixtures)

# MLflow's SQL store on SQLAlchemy 2.1, in this process's own MlflowClient (dlexp's writer silences it itself)
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")

TINY = [
    "model=mlp",
    "model.hidden=[16]",
    "dataset=wine",
    "trainer.steps=4",
    "trainer.eval_every=2",
    "trainer.log_every=2",
    "trainer.progress=false",
    "logger.console=false",
]


def runs_of(client, experiment="dlexp"):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id])


def artifacts(client, run_id, path=None):
    return {f.path for f in client.list_artifacts(run_id, path)}


def test_a_sweep_is_a_parent_run_with_one_child_per_job_beside_tensorboard(cli, tmp_path, mlflow_server):  # noqa: F811
    from mlflow import MlflowClient

    sweep_dir = tmp_path / "sweep"
    cli(
        "-m",
        *TINY,
        "trainer.checkpoint.enabled=false",
        "optimizer.lr=1e-3,1e-2",
        "seed=0,1",
        "logger=[tensorboard,mlflow]",
        f"logger.tracking_uri={mlflow_server}",
        f"hydra.sweep.dir={sweep_dir}",
        check=True,
    )
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = runs_of(client)
    (parent,) = [r for r in runs if r.data.tags.get("dlexp.sweep_dir") == str(sweep_dir)]
    assert parent.info.status == "FINISHED" and "results.csv" in artifacts(client, parent.info.run_id)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = {r.info.run_name for r in children}
    assert names == {f"optimizer.lr={lr},seed={s}" for lr in ("0.001", "0.01") for s in (0, 1)}
    assert names == {p.name for p in (sweep_dir / "tb").iterdir() if not p.name.startswith(".")}
    for run in children:
        values = dict(pair.split("=") for pair in run.info.run_name.split(","))
        params = run.data.params
        assert float(params["optimizer.lr"]) == float(values["optimizer.lr"]) and params["seed"] == values["seed"]
        assert params["model._target_"] == "dlexp.models.MLP" and params["model.hidden"] == "[16]"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4]
        assert "val_best/loss" in run.data.metrics and "val_per_class/f1/0" in run.data.metrics
        assert {"summary.json", "run.json"} <= artifacts(client, run.info.run_id)
        assert run.info.status == "FINISHED" and run.data.tags["dlexp.swept"] == "optimizer.lr,seed"
        assert list((sweep_dir / "tb" / run.info.run_name).glob("events.out.tfevents.*"))  # both loggers at once


def test_a_run_with_copies_goes_to_the_local_sqlite_store_under_paths_runs(cli, tmp_path):
    from mlflow import MlflowClient

    cli(*TINY, "trainer.seeds=2", "logger=mlflow", check=True)
    assert (tmp_path / "runs" / "mlflow.db").is_file() and (tmp_path / "runs" / "mlartifacts").is_dir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/runs/mlflow.db")
    runs = runs_of(client)
    (job,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    run_dir = job.data.tags["dlexp.run_dir"]
    assert read_json(f"{run_dir}/mlflow.json")["run_id"] == job.info.run_id  # a resumed run goes on in it
    assert {"summary.json", "prep.json", "text"} <= artifacts(client, job.info.run_id)
    assert "text/config.txt" in artifacts(client, job.info.run_id, "text")
    assert job.data.tags["dlexp.best_checkpoint"].startswith(f"{run_dir}/checkpoints/")
    assert job.data.params["trainer.seeds"] == "2" and job.info.status == "FINISHED"  # the job's own config
    copies = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == job.info.run_id}
    assert set(copies) == {"seed_0", "seed_1"}
    assert [copies[c].data.params["seed"] for c in ("seed_0", "seed_1")] == ["0", "1"]
    assert all(len(client.get_metric_history(r.info.run_id, "val/loss")) == 2 for r in copies.values())


def test_a_tracking_uri_nothing_answers_is_one_clear_error(cli):
    proc = cli(*TINY, "logger=mlflow", f"logger.tracking_uri=http://127.0.0.1:{free_port()}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "logger.tracking_uri=http://127.0.0.1:" in proc.stderr and "mlflow server" in proc.stderr
