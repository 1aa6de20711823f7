"""Per-copy hyperparameters: each copy of `trainer.copies` trains as the separate run with its values.

Each copy below differs from the base in one vectorizable key, so the test covers every key
with one copies program and one single run per key.
"""

import pytest
from conftest import read_json

from dlexp.copies import copy_specs
from dlexp.errors import ConfigError
from dlexp.train import run

TINY = [
    "model=mlp",
    "model.hidden=[16]",
    "dataset=wine",
    "data_seed=0",
    "trainer.steps=12",
    "trainer.eval_every=6",
    "trainer.log_every=6",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "logger=none",
    "logger.console=false",
]
# Every term on, so that each key's copy can move it alone (copies share which terms are on).
ADAMW = [
    "optimizer=adamw",
    "optimizer.lr=0.01",
    "optimizer.weight_decay=0.01",
    "optimizer.clip_norm=1.0",
    "loss.l1=0.001",
    "loss.l2=0.001",
    "loss.label_smoothing=0.1",
    "model.dropout=0.1",
]
ADAMW_COPIES = [
    {"optimizer.lr": 0.003},
    {"optimizer.weight_decay": 0.1},
    {"optimizer.clip_norm": 0.05},
    {"optimizer.b1": 0.5},
    {"optimizer.b2": 0.9},
    {"loss.l1": 0.01},
    {"loss.l2": 0.05},
    {"loss.label_smoothing": 0.3},
    {"model.dropout": 0.4},
    {"seed": 5},
]
# sgd: momentum, and weight decay added as its own step (sgd does not take it).
SGD = ["optimizer=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.weight_decay=0.01"]
SGD_COPIES = [{"optimizer.momentum": 0.5}, {"optimizer.weight_decay": 0.1}]


def as_override(values: dict) -> list[str]:
    return [f"{k}={v}" for k, v in values.items()]


def copies_arg(sets: list[dict]) -> str:
    return "trainer.copies=[" + ",".join("{" + ",".join(f"{k}: {v}" for k, v in s.items()) + "}" for s in sets) + "]"


@pytest.mark.parametrize("base,sets", [(ADAMW, ADAMW_COPIES), (SGD, SGD_COPIES)], ids=["adamw", "sgd"])
def test_each_copy_equals_the_separate_run_with_its_values(compose, tmp_path, base, sets):
    _, packed = run(compose([*TINY, *base, copies_arg([{}, *sets])]), str(tmp_path / "copies"))
    assert packed["status"] == "completed" and len(packed["copies"]) == len(sets) + 1
    first = packed["copies"][0]["final"]["train"]["loss"]
    for values, copy in zip([{}, *sets], packed["copies"]):
        key = next(iter(values), "base")
        _, alone = run(compose([*TINY, *base, *as_override(values)]), str(tmp_path / key))
        assert copy["values"] == values
        for split in ("train", "val"):
            for k, v in alone["final"][split].items():
                assert copy["final"][split][k] == pytest.approx(v, rel=2e-4, abs=1e-6), (key, split, k)
        for k, v in alone["test"].items():
            assert copy["test"][k] == pytest.approx(v, rel=2e-4, abs=1e-6), (key, k)
        if values:  # the key changes what is trained: the test cannot pass by ignoring it
            assert copy["final"]["train"]["loss"] != pytest.approx(first, rel=1e-5), key
    assert read_json(tmp_path / "copies" / "summary.json")["copies"][1]["label"] == ",".join(as_override(sets[0]))


def test_copies_must_differ_in_vectorizable_keys_and_share_their_switches(compose):
    from dlexp.config import typed

    def specs(*overrides):
        return copy_specs(typed(compose([*TINY, *overrides])))

    with pytest.raises(ConfigError, match=r"trainer.copies\[0\]: model.hidden cannot differ.*vectorizable keys"):
        specs("trainer.copies=[{model.hidden: [8]}]")
    with pytest.raises(ConfigError, match="loss.l1 is 0 or null .* in some copies and set in others"):
        specs("trainer.copies=[{loss.l1: 0.0},{loss.l1: 0.01}]")
    with pytest.raises(ConfigError, match="two copies have the same values"):
        specs("trainer.copies=[{seed: 1},{seed: 1}]")
    with pytest.raises(ConfigError, match="non-empty list of override sets"):
        specs("trainer.copies=3")
    seeded = specs("trainer.copies=[{optimizer.lr: 0.1},{optimizer.lr: 0.2}]", "trainer.seeds=[0,1]")
    assert seeded is not None and [s.label for s in seeded] == [
        "optimizer.lr=0.1,seed=0",
        "optimizer.lr=0.1,seed=1",
        "optimizer.lr=0.2,seed=0",
        "optimizer.lr=0.2,seed=1",
    ]
