"""Every preset in experiments/ composes and trains for a few steps (in-process, tiny run).

The presets that log images run with TensorBoard on, and their images are read back.
"""

import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlexp.train import run

PRESETS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
IMAGES = {  # preset -> image tags it must write
    "digits_cnn": {"plots/confusion_matrix", "plots/roc", "plots/predictions"},
    "digits_gan": {"samples/generated"},
    "digits_vae": {"samples/reconstructions"},
    "series_lstm": {"plots/predictions", "plots/forecasts"},
}
SHORT = [
    "trainer.steps=3",
    "trainer.eval_every=3",
    "trainer.log_every=3",
    "trainer.progress=false",
    "trainer.checkpoint.enabled=false",
    "quality.judge=off",  # a generative preset's judge: tests/test_quality.py
]
PRESET_SHORT = {"digits_gan": ["quality.judge=auto", "quality.judge_steps=10"]}  # its objective is the judge's val/fid


def test_there_is_a_preset_per_model_family():
    for name in (
        "digits_cnn",
        "digits_resnet",
        "digits_lstm",
        "digits_transformer",
        "digits_gan",
        "digits_vae",
        "breast_cancer_mlp",
        "wine_mlp",
        "diabetes_mlp",
        "series_lstm",
    ):
        assert name in PRESETS


# Presets whose model and task an end-to-end test trains already (tests/test_text.py,
# tests/test_seq2seq.py): here they are composed, not trained.
COMPOSED_ONLY = {"python_docs_lm": "tests/test_text.py", "dates_seq2seq": "tests/test_seq2seq.py"}


@pytest.mark.parametrize("preset", sorted(COMPOSED_ONLY))
def test_text_presets_compose(preset, compose):
    cfg = compose([f"experiment={preset}"])
    assert cfg.name == preset and cfg.dataset._target_.startswith("dlexp.data.")


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in COMPOSED_ONLY])
def test_preset_runs_briefly(preset, compose, tmp_path):
    logger = (
        ["logger=tensorboard", "logger.jsonl=false", "logger.console=false"] if preset in IMAGES else ["logger=none"]
    )
    cfg = compose([f"experiment={preset}", *SHORT, *PRESET_SHORT.get(preset, []), *logger])
    value, summary = run(cfg, str(tmp_path))
    assert summary["status"] == "completed" and summary["steps"] == 3
    assert math.isfinite(value)
    assert summary["test"] and all(math.isfinite(v) for k, v in summary["test"].items() if k != "roc_auc")
    if preset in IMAGES:
        acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
        acc.Reload()
        assert IMAGES[preset] <= set(acc.Tags()["images"])
