"""The callbacks group: built-in hooks by name, turned off by null, and a user's own by `_target_`."""

import os
import re

import pytest

from dlexp.errors import ConfigError
from dlexp.train import run

TINY = [
    "model=mlp",
    "dataset=wine",
    "trainer.steps=8",
    "trainer.eval_every=4",
    "trainer.log_every=2",
    "trainer.progress=false",
    "logger=jsonl",
    "logger.console=false",
]


def test_a_users_hook_sees_every_event_and_each_copys_metrics(compose, tmp_path):
    hook = ["+callbacks.counter._target_=own_hook.Counter", "+callbacks.counter.tag=counted"]
    _, one = run(compose([*TINY, *hook]), str(tmp_path / "one"))
    assert one["counted"]["events"] == {"start": 1, "log": 4, "eval": 2, "step": 8}
    assert one["counted"]["run_dir"] == str(tmp_path / "one")  # injected: the constructor names it
    assert one["counted"]["val_losses"][-1] == [one["final"]["val"]["loss"]]

    _, vec = run(compose([*TINY, *hook, "trainer.seeds=[0,1]"]), str(tmp_path / "vec"))
    assert [len(v) for v in vec["counted"]["val_losses"]] == [2, 2]  # one value per copy
    assert vec["counted"]["val_losses"][-1] == [c["final"]["val"]["loss"] for c in vec["copies"]]


def test_a_built_in_hook_is_turned_off_by_null(compose, tmp_path):
    _, summary = run(compose([*TINY, "callbacks.checkpoint=null", "callbacks.confusion=null"]), str(tmp_path / "r"))
    assert "checkpoint" not in summary and "confusion" not in summary
    assert not os.path.exists(tmp_path / "r" / "checkpoints")


@pytest.mark.parametrize(
    "override, message",
    [
        (["+callbacks.bad._target_=own_hook.not_a_hook"], "callbacks.bad._target_='own_hook.not_a_hook' made a int"),
        (
            ["+callbacks.counter._target_=own_hook.Counter", "+callbacks.counter.tga=x"],
            "callbacks.counter.tga is not a parameter of own_hook.Counter (did you mean 'tag'?); valid keys: tag",
        ),
        (["+callbacks.gone._target_=own_hook.Gone"], "module 'own_hook' has no 'Gone'"),
    ],
)
def test_a_bad_callback_is_named(compose, tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run(compose([*TINY, *override]), str(tmp_path / "r"))
