"""Using a saved run: `python -m dlexp.evaluate` and `python -m dlexp.predict`, and their bad input."""

import json

import numpy as np
import polars as pl
import pytest
from conftest import CONF, read_json

from dlexp import evaluate, predict
from dlexp.train import run

TRAIN = [
    "model=mlp",
    "model.hidden=[16]",
    "dataset=wine",
    "trainer.batch_size=32",
    "trainer.steps=24",
    "trainer.eval_every=6",
    "trainer.log_every=6",
    "trainer.progress=false",
    "trainer.parallel=single",
    "logger=none",
    "trainer.checkpoint.async_save=false",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, cache_dir):
    """A tiny trained run (in-process, with its .hydra/config.yaml as Hydra writes it) and a new file."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from dlexp.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.cache={cache_dir}", *TRAIN])
    GlobalHydra.instance().clear()
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    _, summary = run(cfg, str(run_dir))
    wine = pl.read_parquet(f"{cache_dir}/wine.parquet")
    new = run_dir.parent / "new.csv"
    wine.head(40).with_row_index("id").write_csv(new)
    return run_dir, summary, new


def test_evaluate_cli_restores_the_best_state_of_the_summary(cli, saved):
    run_dir, summary, new = saved
    proc = cli(str(run_dir), module="dlexp.evaluate", check=True)
    result = json.loads(proc.stdout)
    assert (
        result["step"] == summary["best"]["step"]
        and result["rows"] == read_json(run_dir / "prep.json")["source"]["sizes"]["test"]
    )
    for k, v in summary["test"].items():
        assert result["metrics"][k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    assert "accuracy" in proc.stderr  # the table

    on_file = evaluate.evaluate(evaluate.load_run(str(run_dir)), path=str(new))
    assert on_file["rows"] == 40 and 0.0 <= on_file["metrics"]["accuracy"] <= 1.0
    val = evaluate.evaluate(evaluate.load_run(str(run_dir)), split="val")
    assert val["metrics"]["loss"] == pytest.approx(summary["best"]["val"]["loss"], rel=1e-5)


def test_predict_cli_writes_predictions_and_probabilities(cli, saved, tmp_path):
    run_dir, _, new = saved
    out = tmp_path / "p.parquet"
    cli(str(run_dir), f"path={new}", f"out={out}", module="dlexp.predict", check=True)
    df = pl.read_parquet(out)
    classes = read_json(run_dir / "prep.json")["classes"]
    assert df.height == 40 and df["id"].to_list() == list(range(40))
    assert df.columns == ["id", "label", "prediction", *[f"prob_{c}" for c in classes]]
    probs = df.select([f"prob_{c}" for c in classes]).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert set(df["prediction"].to_list()) <= set(classes)
    assert (df["prediction"] == df["label"]).mean() > 0.5  # it learned something


BAD = [
    (evaluate, ["nowhere"], "run dir 'nowhere' does not exist"),
    (evaluate, [], "usage: python -m dlexp.evaluate RUN_DIR"),
    (evaluate, ["{run}", "split=dev"], "split='dev' is not valid; choose one of train, val, test"),
    (evaluate, ["{run}", "splt=val"], "'splt' is not an option; valid: split, path, format, checkpoint"),
    (evaluate, ["{run}", "checkpoint=first"], "checkpoint='first' is not valid; choose one of best, last"),
    (evaluate, ["{run}", "dataset.lable=x"], "dataset.lable is not a key of this run's dataset config"),
    (evaluate, ["{run}", "path={tmp}/cols.csv"], "lacks the input columns 'alcohol'"),
    (evaluate, ["{run}", "path={tmp}/none.csv"], "dataset.path='{tmp}/none.csv': no such file"),
    (evaluate, ["{tmp}"], "is not a run dir: it has no .hydra/config.yaml"),
    (predict, ["{run}"], "path=FILE is required"),
    (predict, ["{run}", "path={tmp}/empty.csv"], "has no rows"),
]


@pytest.mark.parametrize(
    "module,args,message", BAD, ids=[f"{m.__name__.split('.')[-1]}:{' '.join(a)}" for m, a, _ in BAD]
)
def test_bad_input_gives_one_clear_message(saved, tmp_path, capsys, module, args, message):
    run_dir, _, new = saved
    pl.DataFrame({"a": [1.0]}).write_csv(tmp_path / "cols.csv")
    pl.read_csv(new).head(0).write_csv(tmp_path / "empty.csv")
    fill = lambda s: s.replace("{run}", str(run_dir)).replace("{tmp}", str(tmp_path))  # noqa: E731
    assert module.main([fill(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert f"dlexp error: {fill(message)}" in err or fill(message) in err, err


def test_a_run_without_checkpoints_says_so(saved, tmp_path, capsys):
    import shutil

    run_dir, _, _ = saved
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("checkpoints"))
    assert evaluate.main([str(bare)]) == 2
    assert "holds no checkpoint (trainer.checkpoint.enabled was false" in capsys.readouterr().err


def test_a_run_of_several_seeds_says_evaluate_takes_a_single_run(saved, tmp_path, capsys):
    import shutil

    run_dir, _, _ = saved
    copies = tmp_path / "copies"
    shutil.copytree(run_dir, copies)
    config = copies / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("seeds: null", "seeds:\n  - 0\n  - 1"))
    assert evaluate.main([str(copies)]) == 2
    assert "trained trainer.seeds=[0, 1] as copies in one program" in capsys.readouterr().err
