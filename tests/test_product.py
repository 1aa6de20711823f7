"""dlexp as a product: every documented data key settable without `+`, a loader of one's own by
one override, the Python API, and help."""

import numpy as np
import polars as pl
import pytest

import dlexp
from dlexp.config import open_target_overrides, typed
from dlexp.data import load_dataset
from dlexp.errors import ConfigError

# The keys the README's data table documents, each with a value that changes something.
DATA_KEYS = {
    "features": "[a,b,city,w,split_col,t,img,seq]",
    "categorical": "[city]",
    "encode": "ordinal",
    "weight": "w",
    "drop": "[id]",
    "missing": "median",
    "outliers": "iqr",
    "outlier_threshold": "3.0",
    "outlier_action": "clip",
    "dedupe": "true",
    "scale": "minmax",
    "split": "column",
    "split_column": "split_col",
    "stream": "false",
    "max_resident_mb": "512",
    "time_column": "t",
}
# The table's keys that need another kind of data (images, sequences): checked as far as composing.
COMPOSE_ONLY = {
    "image": "img",
    "image_shape": "[2,2,1]",
    "sequence": "[seq]",
    "sequence_length": "4",
    "val_fraction": "0.2",
    "test_fraction": "0.2",
    "augment": "{flip: true}",
}


@pytest.fixture()
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    pl.DataFrame(
        {
            "id": np.arange(n),
            "a": rng.normal(size=n),
            "b": [None if i % 7 == 0 else float(i) for i in range(n)],
            "city": rng.choice(["x", "y", "z"], n),
            "w": rng.uniform(0.5, 2, n),
            "t": np.arange(n),
            "split_col": ["train"] * 40 + ["val"] * 10 + ["test"] * 10,
            "img": rng.normal(size=n),
            "seq": rng.normal(size=n),
            "label": rng.integers(0, 2, n),
        }
    ).write_csv(tmp_path / "d.csv")
    return tmp_path / "d.csv"


def test_every_documented_data_key_is_set_without_a_plus(compose, csv_file, tmp_path):
    base = ["dataset=csv", f"dataset.path={csv_file}", "dataset.label=label"]
    for key, value in {**DATA_KEYS, **COMPOSE_ONLY}.items():  # each composes on its own, without `+`
        assert typed(compose(open_target_overrides([*base, f"dataset.{key}={value}"]))).dataset[key] is not None, key
    keys = [f"dataset.{k}={v}" for k, v in DATA_KEYS.items() if k not in ("features", "time_column")]
    cfg = typed(compose(open_target_overrides([*base, *keys])))
    data = load_dataset(cfg.dataset, seed=0, cache_dir=str(tmp_path / "cache"))
    assert data.sizes() == {"train": 40, "val": 10, "test": 10}  # split=column
    assert data.sample_weights("train") is not None and "b" in data.prep["fills"]  # b's nulls filled by median


def test_a_misspelt_data_key_is_named_with_the_one_meant(compose, csv_file, tmp_path):
    cfg = typed(
        compose(
            open_target_overrides(
                ["dataset=csv", f"dataset.path={csv_file}", "dataset.label=label", "dataset.mising=median"]
            )
        )
    )
    with pytest.raises(ConfigError, match=r"dataset.mising is not a parameter of .*table \(did you mean 'missing'\?\)"):
        load_dataset(cfg.dataset, seed=0, cache_dir=str(tmp_path / "cache"))


def test_a_loader_of_ones_own_is_one_override(cli, tmp_path):
    (tmp_path / "my_loader.py").write_text(
        "import numpy as np\n"
        "from dlexp.data import Dataset\n"
        "def load(rows: int, seed: int = 0):\n"
        "    rng = np.random.default_rng(seed)\n"
        "    x = rng.normal(size=(rows, 4)).astype('float32'); y = (x[:, 0] > 0).astype('int32')\n"
        "    h, q = rows // 2, 3 * rows // 4\n"
        "    s = {'train': slice(0, h), 'val': slice(h, q), 'test': slice(q, rows)}\n"
        "    return Dataset(x={k: x[v] for k, v in s.items()}, y={k: y[v] for k, v in s.items()},\n"
        "                   task='classification', classes=[0, 1], prep={'source': {'path': 'my_loader'}})\n"
    )
    out = cli(
        "dataset._target_=my_loader.load",
        "dataset.rows=200",
        "model=mlp",
        "trainer.steps=4",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path / 'r'}",
        env={"PYTHONPATH": f"{tmp_path}"},
        check=None,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "objective val/loss" in out.stderr


def test_the_python_api_trains_and_returns_the_summary(tmp_path, cache_dir):
    summary = dlexp.run(
        [
            "model=mlp",
            "dataset=wine",
            "trainer.steps=4",
            "trainer.progress=false",
            "logger.console=false",
            f"paths.cache={cache_dir}",
            "dataset.split=random",
        ],
        run_dir=str(tmp_path / "r"),
    )
    assert summary["status"] == "completed" and summary["run_dir"] == str(tmp_path / "r")
    assert (tmp_path / "r" / ".hydra" / "config.yaml").exists()  # evaluate and predict read it back
    with pytest.raises(ConfigError, match="dataset.splt is not a parameter"):
        dlexp.run(
            ["model=mlp", "dataset=wine", "dataset.splt=random", f"paths.cache={cache_dir}"],
            run_dir=str(tmp_path / "bad"),
        )


def test_train_help_shows_dlexps_groups_keys_and_examples(cli):
    out = cli("--help", check=True)
    assert "Config groups" in out.stdout and "dataset: breast_cancer, csv" in out.stdout
    assert "trainer.seeds" in out.stdout and "python -m dlexp.train model=mlp dataset=wine" in out.stdout


@pytest.mark.parametrize("module", ["dlexp.evaluate", "dlexp.predict", "dlexp.sweep", "dlexp.report"])
def test_every_command_answers_help(cli, module):
    out = cli("--help", module=module, check=True)
    assert module in out.stdout or module.split(".")[1] in out.stdout.lower()


@pytest.mark.parametrize(
    "args, hydra_says",
    [
        (["trainer.batch_size=abc"], "could not be converted to Integer"),
        (["model=cnnx"], "Could not find 'model/cnnx'"),
    ],
)
def test_a_config_hydra_rejects_exits_2_with_hydras_message(cli, args, hydra_says):
    out = cli(*args)
    assert out.returncode == 2 and hydra_says in out.stderr


def test_a_conf_folder_where_you_run_adds_options(cli, tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tiny.yaml").write_text("_target_: dlexp.models.MLP\nhidden: [4]\n")
    out = cli(
        "model=tiny",
        "dataset=wine",
        "trainer.steps=2",
        "trainer.progress=false",
        f"hydra.run.dir={tmp_path / 'r'}",
        check=True,
    )
    import json

    assert "objective val/loss" in out.stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["num_params"] == 13 * 4 + 4 + 4 * 3 + 3
