"""single, mesh, pmap and copies on 4 fake CPU devices give the same numbers."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = r"""
import json, sys
from hydra import compose, initialize_config_dir
from dlexp.config import register_configs
from dlexp.train import run
from dlexp.errors import DlexpError
register_configs()
out = {}
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    for kind in ["single", "mesh", "pmap"]:
        for model in ["mlp", "cnn"]:
            cfg = compose("train", overrides=[
                f"model={model}", "model.dropout=0.0", f"trainer.parallel={kind}", "trainer.steps=12",
                "trainer.log_every=1", "trainer.eval_every=6", "trainer.batch_size=32", "trainer.progress=false",
                "logger=jsonl", "trainer.steps_per_call=3", f"paths.cache={sys.argv[2]}"])
            run_dir = f"{sys.argv[3]}/{kind}_{model}"
            value, summary = run(cfg, run_dir)
            losses = [json.loads(line).get("train/loss") for line in open(run_dir + "/metrics.jsonl")]
            out[f"{kind}_{model}"] = {"losses": [v for v in losses if v is not None], "test": summary["test"],
                                      "devices": summary["devices"], "objective": value}
    # One seed with augmentation: a single run (one device, and a mesh of 4) and its copy, alone
    # on one device and among four copies spread over the 4 devices.
    aug = ["model=cnn", "model.channels=[8]", "model.dense=[16]", "+dataset.augment={flip: true, crop: 1}",
           "seed=5", "trainer.steps=8", "trainer.log_every=2", "trainer.eval_every=4", "trainer.batch_size=32",
           "trainer.progress=false", "logger=jsonl", f"paths.cache={sys.argv[2]}"]
    for name, extra in [("single", ["trainer.parallel=single"]), ("mesh", ["trainer.parallel=mesh"]),
                        ("copy", ["trainer.seeds=[5]"]), ("copies4", ["trainer.seeds=[5,6,7,8]"])]:
        cfg = compose("train", overrides=[*aug, *extra])
        value, summary = run(cfg, f"{sys.argv[3]}/aug_{name}")
        copy = summary.get("copies", [summary])[0]
        out[f"aug_{name}"] = {"final": copy["final"]["train"], "test": copy["test"], "best": copy["best"],
                              "devices": summary["devices"]}
    cfg = compose("train", overrides=["model=mlp", "trainer.parallel=mesh", "trainer.batch_size=30",
                                      "trainer.steps=2", f"paths.cache={sys.argv[2]}", "logger=none"])
    try:
        run(cfg, f"{sys.argv[3]}/bad")
    except DlexpError as e:
        out["bad_batch"] = str(e)
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory, cache_dir):
    tmp = tmp_path_factory.mktemp("parallel")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "conf"), cache_dir, str(tmp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["mesh", "pmap"])
def test_same_losses_as_single_device(results, kind, model):
    one, many = results[f"single_{model}"], results[f"{kind}_{model}"]
    assert one["devices"] == 1 and many["devices"] == 4
    assert len(one["losses"]) == 12
    assert many["losses"] == pytest.approx(one["losses"], rel=2e-4, abs=1e-5)
    assert many["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=2e-4)
    assert many["test"]["accuracy"] == pytest.approx(one["test"]["accuracy"], abs=1e-9)


def test_batch_that_does_not_split_is_a_clear_error(results):
    assert "trainer.batch_size=30 does not split over 4 devices; use a multiple of 4" in results["bad_batch"]


@pytest.mark.parametrize("name", ["mesh", "copy", "copies4"])
def test_one_seed_is_the_same_run_in_every_layout_with_augmentation(results, name):
    one, other = results["aug_single"], results[f"aug_{name}"]
    assert other["devices"] == {"mesh": 4, "copy": 1, "copies4": 4}[name]
    tol = 2e-4 if name == "mesh" else 1e-5  # the mesh sums the batch in another order
    assert other["final"]["loss"] == pytest.approx(one["final"]["loss"], rel=tol)
    assert other["best"]["step"] == one["best"]["step"]
    for k, v in one["test"].items():
        if isinstance(v, float):
            assert other["test"][k] == pytest.approx(v, rel=tol, abs=1e-6), k
