"""The real CLI in a subprocess: a tiny run end to end, and bad input."""

import math
import os

import numpy as np
import polars as pl
import pytest
from conftest import read_json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TINY = ["trainer.steps=24", "trainer.eval_every=8", "trainer.log_every=8", "trainer.progress=false"]


def load_events(run_dir):
    acc = EventAccumulator(os.path.join(run_dir, "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tiny_run_end_to_end(cli, tmp_path):
    run_dir = tmp_path / "run"
    cli("model=mlp", *TINY, f"hydra.run.dir={run_dir}", check=True)

    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 24
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
    assert summary["objective"]["metric"] == "val/loss"
    assert math.isfinite(summary["objective"]["value"])
    assert summary["objective"]["value"] == pytest.approx(summary["best"]["val"]["loss"])
    assert summary["time_to_first_step_s"] > 0

    info = read_json(run_dir / "run.json")
    assert info["seed"] == 0 and info["packages"]["jax"] and info["devices"][0]["platform"] == "cpu"
    assert "commit" in info["git"] and info["command"][1:3] == ["-m", "dlexp.train"]
    prep = read_json(run_dir / "prep.json")
    assert prep["source"]["sizes"]["train"] + prep["source"]["sizes"]["val"] + prep["source"]["sizes"]["test"] == 1797
    assert (run_dir / ".hydra" / "config.yaml").exists()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) >= 6

    acc = load_events(run_dir)
    tags = acc.Tags()
    for tag in (
        "train/loss",
        "train/accuracy",
        "optimizer/lr",
        "optimizer/grad_norm",
        "throughput/samples_per_s",
        "throughput/epoch",
        "val/loss",
        "val/accuracy",
        "val_per_class/f1/3",
        "test/accuracy",
        "test/f1",
        "test_per_class/recall/9",
    ):
        assert tag in tags["scalars"], tag
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag))
    # The layout: headline metrics under train/ val/ test/, everything else in its own group.
    groups = {t.split("/")[0] for t in tags["scalars"]}
    assert groups == {"train", "val", "test", "val_per_class", "test_per_class", "optimizer", "throughput", "val_best"}
    assert not [t for t in tags["scalars"] if t.startswith(("train/", "val/", "test/")) and t.count("/") > 1]
    assert [e.step for e in acc.Scalars("train/loss")] == [8, 16, 24]
    assert [e.step for e in acc.Scalars("val/loss")] == [8, 16, 24]
    (best,) = acc.Scalars("val_best/loss")  # one point, at the best evaluation's step
    assert (best.step, best.value) == (summary["best"]["step"], pytest.approx(summary["objective"]["value"]))
    assert acc.Scalars("test/accuracy")[0].value == pytest.approx(summary["test"]["accuracy"], rel=1e-5)
    assert any(t.startswith("config") for t in tags["tensors"])  # the resolved config as text
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    (layout,) = [t for t in tags["tensors"] if t.startswith("custom_scalars")]
    chart = layout_pb2.Layout.FromString(acc.Tensors(layout)[0].tensor_proto.string_val[0]).category[0].chart[0]
    assert list(chart.multiline.tag) == ["^train/loss$", "^val/loss$"]  # the objective is val/loss here

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["model"].string_value == "mlp" and hp["optimizer.lr"].number_value == pytest.approx(3e-3)
    assert "lr" not in hp  # one key per hyperparameter, under its config name
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = [m.name.tag for m in exp.metric_infos]
    assert metric_tags[:2] == ["val_best/loss", "test/loss"]  # the objective first, then its test value
    assert {"test/accuracy", "val_best/accuracy"} <= set(metric_tags) <= set(tags["scalars"])
    assert not [t for t in metric_tags if "per_class" in t]
    # A run on its own has nothing swept: every hyperparameter is a column, numbers as numbers.
    kinds = {h.name: h.type for h in exp.hparam_infos}
    assert kinds["optimizer.lr"] == kinds["trainer.batch_size"] == 3 and kinds["model"] == 1  # FLOAT64, STRING


def test_tabular_and_regression_runs(cli, tmp_path):
    cli("model=mlp", "dataset=breast_cancer", *TINY, f"hydra.run.dir={tmp_path / 'bc'}", check=True)
    bc = read_json(tmp_path / "bc" / "summary.json")
    assert bc["test"]["accuracy"] > 0.8
    cli(
        "model=mlp",
        "dataset=diabetes",
        "objective.metric=val/rmse",
        *TINY,
        f"hydra.run.dir={tmp_path / 'db'}",
        check=True,
    )
    db = read_json(tmp_path / "db" / "summary.json")
    assert set(db["test"]) >= {"mse", "rmse", "mae", "r2"}
    assert db["objective"]["metric"] == "val/rmse" and db["test"]["rmse"] > 0


def test_own_parquet_file(cli, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    pl.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "f3": x[:, 2], "target": (x[:, 0] > 0).astype(np.int64)}).write_parquet(
        tmp_path / "mine.parquet"
    )
    cli(
        "model=mlp",
        "dataset=parquet",
        "dataset.path=mine.parquet",
        "dataset.label=target",
        *TINY,
        f"hydra.run.dir={tmp_path / 'own'}",
        check=True,
    )
    s = read_json(tmp_path / "own" / "summary.json")
    assert s["test"]["accuracy"] > 0.7


BAD = [
    (["trainer.epoch=3"], "trainer.epoch: 'epoch' is not a key of trainer (did you mean 'epochs'?); valid: batch_size"),
    (["sed=3"], "sed: 'sed' is not a top-level key or config group (did you mean 'seed'?)"),
    (["trainr.epochs=3"], "trainr.epochs: 'trainr' is not a top-level key (did you mean 'trainer'?)"),
    (
        ["trainer.batch_size=lots"],
        "Value 'lots' of type 'str' could not be converted to Integer\n    full_key: trainer.batch_size",
    ),
    (["model=cnnn"], "Available options in 'model'"),
    (["model.hiden=[4]"], "model.hiden is not a parameter of dlexp.models.cnn.CNN (did you mean"),
    (["+model.hiden=[4]"], "model.hiden is not a parameter of dlexp.models.cnn.CNN (did you mean"),
    (
        ["dataset=parquet", "dataset.path=missing.parquet", "dataset.label=y"],
        "dataset.path='missing.parquet': no such file",
    ),
    (["dataset=parquet", "dataset.label=y"], "dataset.path must be set"),
    (["objective.metric=val/r2"], "objective.metric='val/r2' is not a metric of classification; valid: val/loss"),
    (["model._target_=my_pkg.Net"], "model._target_='my_pkg.Net': cannot import module 'my_pkg'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[a[0] for a, _ in BAD])
def test_bad_input_gives_one_clear_message(cli, args, message):
    proc = cli(*args, "debug=fast")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_missing_label_column_is_named(cli, tmp_path):
    pl.DataFrame({"a": [1.0, 2.0], "b": [0, 1]}).write_csv(tmp_path / "d.csv")
    proc = cli(
        "dataset=csv",
        "dataset.path=d.csv",
        "dataset.label=target",
        "model=mlp",
        "debug=fast",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert proc.returncode == 2
    assert "dataset.label='target' is not a column of d.csv; columns: a, b" in proc.stderr
    summary = read_json(tmp_path / "r" / "summary.json")
    assert summary["status"] == "failed" and "target" in summary["error"]


def test_own_model_class_from_own_config_dir(cli, tmp_path):
    """The README's example: a user's NNX module and config, no dlexp edits."""
    pkg = tmp_path / "my_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        "from flax import nnx\n\n"
        "class Wide(nnx.Module):\n"
        "    def __init__(self, in_shape, num_outputs, *, width: int = 1024, rngs: nnx.Rngs):\n"
        "        self.fc = nnx.Linear(in_shape[-1], width, rngs=rngs)\n"
        "        self.out = nnx.Linear(width, num_outputs, rngs=rngs)\n\n"
        "    def __call__(self, x):\n"
        "        return self.out(nnx.relu(self.fc(x.reshape(x.shape[0], -1))))\n"
    )
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "wide.yaml").write_text("_target_: my_pkg.nets.Wide\nwidth: 64\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cli(
        "model=wide",
        "dataset=wine",
        *TINY,
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
        f"hydra.run.dir={tmp_path / 'w'}",
        env=env,
        check=True,
    )
    s = read_json(tmp_path / "w" / "summary.json")
    assert s["num_params"] == 13 * 64 + 64 + 64 * 3 + 3


def test_nan_loss_stops_with_the_step(cli, tmp_path):
    proc = cli(
        "model=mlp",
        "optimizer=sgd",
        "optimizer.lr=1e12",
        "optimizer.momentum=null",
        *TINY,
        f"hydra.run.dir={tmp_path / 'nan'}",
    )
    assert proc.returncode == 2
    assert "the train loss became nan between steps" in proc.stderr
    assert read_json(tmp_path / "nan" / "summary.json")["status"] == "failed"


def test_a_diverging_run_with_nan_policy_skip_fails_with_one_message(cli, tmp_path):
    proc = cli(
        "model=mlp",
        "dataset=wine",
        "optimizer=sgd",
        "optimizer.lr=1e6",
        "trainer.nan_policy=skip",
        "trainer.steps=24",
        "trainer.eval_every=6",
        "trainer.log_every=6",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path / 'skip'}",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "dlexp error: the val loss was not finite at any of 3 evaluation(s) up to step 18" in proc.stderr
    assert read_json(tmp_path / "skip" / "summary.json")["status"] == "failed"


def bad_files(d):
    """The issue's bad data files: {name: (file, message)}."""
    (d / "empty.csv").write_bytes(b"")
    (d / "garbage.parquet").write_bytes(bytes(range(256)) * 4)
    (d / "header.csv").write_text("f1,f2,label\n")
    pl.DataFrame({"f1": np.arange(40.0), "label": [1] * 40}).write_csv(d / "one_class.csv")
    return {
        "empty": ("empty.csv", "empty.csv is empty (0 bytes); expected a CSV file: UTF-8 text, a header row"),
        "garbage": ("garbage.parquet", "cannot read garbage.parquet as Parquet (parquet: File out of specification"),
        "header": ("header.csv", "header.csv has no rows (columns: f1, f2, label)"),
        "one_class": (
            "one_class.csv",
            "label column 'label' of one_class.csv holds one class (1) in the file; "
            "classification needs at least two classes",
        ),
    }


@pytest.mark.parametrize("case", ["empty", "garbage", "header", "one_class"])
def test_bad_data_files_give_one_clear_message(cli, tmp_path, case):
    name, message = bad_files(tmp_path)[case]
    fmt = "parquet" if name.endswith(".parquet") else "csv"
    proc = cli(
        f"dataset={fmt}",
        f"dataset.path={name}",
        "dataset.label=label",
        "model=mlp",
        "debug=fast",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and f"dlexp error: {message}" in proc.stderr, proc.stderr[-3000:]
    assert read_json(tmp_path / "r" / "summary.json")["status"] == "failed"


@pytest.mark.parametrize(
    "arg,message",
    [
        ("trainer.batch_size=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
        ("model=cnnx", "Could not find 'model/cnnx'"),
    ],
)
def test_a_config_hydra_rejects_exits_2_with_its_message(cli, arg, message):
    proc = cli(arg, "debug=fast")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize(
    "args,message",
    [
        (["optimizer.lr=interval(1e-4, 1e-2)"], "optimizer.lr=interval(1e-4, 1e-2) is a search space, not a list"),
        (
            ["hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.name=foo", "optimizer.lr=interval(1e-4, 1e-2)"],
            "hydra.sweeper.sampler.name='foo' is not a sampler; valid: tpe, random, gp",
        ),
        (
            ["hydra.sweeper.n_trials=2", "hydra.sweeper.storage=foo://x", "optimizer.lr=interval(1e-4, 1e-2)"],
            "hydra.sweeper.storage cannot be opened",
        ),
    ],
)
def test_a_bad_sweep_setting_exits_2_before_any_job(cli, tmp_path, args, message):
    proc = cli("-m", "model=mlp", "dataset=wine", *args, f"hydra.sweep.dir={tmp_path / 's'}")
    assert proc.returncode == 2 and f"dlexp error: {message}" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not list((tmp_path / "s").glob("[0-9]*"))


def test_a_crash_inside_the_job_still_exits_1(cli, tmp_path):
    """Not a user error: the exit code says so (and the traceback stays)."""
    (tmp_path / "boom.py").write_text(
        "from flax import nnx\n\n"
        "class Boom(nnx.Module):\n"
        "    def __init__(self, in_shape, num_outputs, *, rngs: nnx.Rngs):\n"
        "        self.fc = nnx.Linear(in_shape[-1], num_outputs, rngs=rngs)\n\n"
        "    def __call__(self, x):\n"
        "        raise RuntimeError('boom')\n"
    )
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "boom.yaml").write_text("_target_: boom.Boom\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = cli(
        "model=boom",
        "dataset=wine",
        *TINY,
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.run.dir={tmp_path / 'b'}",
        env=env,
    )
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr, proc.stderr[-3000:]
