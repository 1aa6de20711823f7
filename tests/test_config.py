"""Config composition with Hydra's compose API, and the checks on `_target_` groups."""

import pytest
from conftest import CONF
from hydra.errors import ConfigCompositionException, MissingConfigException

from dlexp.config import check_call, import_target
from dlexp.errors import ConfigError


def test_default_config_composes(compose):
    cfg = compose()
    assert cfg.model._target_ == "dlexp.models.CNN"
    assert cfg.dataset._target_ == "dlexp.data.builtin.digits"
    assert cfg.optimizer._target_ == "optax.adamw"
    assert cfg.objective.metric == "val/loss"
    assert cfg.trainer.parallel.value == "auto"


@pytest.mark.parametrize("group", ["dataset", "model", "optimizer", "schedule", "trainer", "logger"])
def test_every_group_option_composes(compose, group):
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert options
    for option in options:
        cfg = compose([f"{group}={option}"])
        assert group in cfg


def test_experiment_and_debug_presets_compose(compose):
    cfg = compose(["experiment=digits_cnn", "debug=fast"])
    assert cfg.name == "debug" and cfg.trainer.steps == 10


def test_misspelt_trainer_key_is_named(compose):
    with pytest.raises(ConfigCompositionException) as e:
        compose(["trainer.epoch=3"])
    assert "epoch" in str(e.value.__cause__ or e.value)


def test_wrong_type_is_named(compose):
    with pytest.raises(ConfigCompositionException) as e:
        compose(["trainer.batch_size=lots"])
    msg = str(e.value.__cause__ or e.value)
    assert "trainer.batch_size" in msg and "lots" in msg


def test_enum_value_lists_valid_ones(compose):
    with pytest.raises(ConfigCompositionException) as e:
        compose(["trainer.parallel=everything"])
    msg = str(e.value.__cause__ or e.value)
    assert "auto" in msg and "mesh" in msg


def test_unknown_group_option_lists_valid_ones(compose):
    with pytest.raises(MissingConfigException) as e:
        compose(["model=cnnn"])
    assert "cnn" in str(e.value) and "mlp" in str(e.value)


def test_check_call_names_unknown_key_and_valid_ones():
    from dlexp.models import MLP

    with pytest.raises(ConfigError) as e:
        check_call(MLP, {"hiden": [3]}, "model", injected=("in_shape", "num_outputs", "rngs"))
    msg = str(e.value)
    assert "model.hiden" in msg and "hidden" in msg and "dropout" in msg
    assert "rngs" not in msg.split("valid keys:")[1]


def test_check_call_checks_simple_types():
    from dlexp.models import MLP

    with pytest.raises(ConfigError, match="model.dropout='high' should be of type float"):
        check_call(MLP, {"dropout": "high"}, "model", injected=("in_shape", "num_outputs", "rngs"))
    with pytest.raises(ConfigError, match="model.hidden=8 should be a list"):
        check_call(MLP, {"hidden": 8}, "model", injected=("in_shape", "num_outputs", "rngs"))
    check_call(MLP, {"hidden": [8], "dropout": 0}, "model", injected=("in_shape", "num_outputs", "rngs"))


def test_import_target_errors_name_key_and_path():
    with pytest.raises(ConfigError, match=r"model._target_='no_such_pkg.Net': cannot import module 'no_such_pkg'"):
        import_target("no_such_pkg.Net", "model")
    with pytest.raises(ConfigError, match=r"module 'dlexp.models' has no 'Resnet'; it has: .*CNN, .*MLP, .*ResNet"):
        import_target("dlexp.models.Resnet", "model")
