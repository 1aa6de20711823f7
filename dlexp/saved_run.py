"""A run loaded back from its run dir: config, data preparation, task and restored parameters.

`dlexp.evaluate` and `dlexp.predict` start here. The parameters come from the newest
checkpoint that restores (its `best` item by default), the preparation from prep.json
(and a text column's tokenizer from tokenizer.json beside it), so new data is
transformed exactly as the training data was.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
import yaml
from omegaconf import DictConfig, OmegaConf

from dlexp.errors import ConfigError, DataError

CHOICES = ("best", "last")  # which parameters: the best evaluation's, or the last step's
log = logging.getLogger("dlexp")


def asks_for_help(argv: list[str], doc: str | None) -> bool:
    """`-h` / `--help`: prints the command's docstring (its usage and what it does)."""
    if any(a in ("-h", "--help") for a in argv):
        print((doc or "").strip())
        return True
    return False


def parse_args(argv: list[str], keys: tuple[str, ...], usage: str) -> tuple[str, dict[str, str], list[str]]:
    """(run dir, {key: value}, ["dataset.k=v", ...]) from `RUN_DIR key=value ...`."""
    if not argv or "=" in argv[0]:
        raise ConfigError(f"usage: {usage}")
    run_dir, opts, dataset = argv[0], {}, []
    for a in argv[1:]:
        key, eq, value = a.partition("=")
        if not eq:
            raise ConfigError(f"{a!r} is not key=value; usage: {usage}")
        if key.startswith("dataset."):
            dataset.append(a)
        elif key in keys:
            opts[key] = value
        else:
            raise ConfigError(f"{key!r} is not an option; valid: {', '.join(keys)}, dataset.<key>")
    return run_dir, opts, dataset


@dataclass
class SavedRun:
    run_dir: str
    cfg: DictConfig
    prep: Any  # dlexp.data.prep.Prep
    prep_dict: dict

    def read(self, path: str, fmt: str = "auto") -> pl.DataFrame:
        """A new file, with the columns the run's preparation needs checked by name."""
        from dlexp.data.images import decode_frame, is_encoded
        from dlexp.data.sources import collect, scan

        lf = scan(path, fmt)
        names = lf.collect_schema().names()
        needed = list(self.prep.features) + list(getattr(self.prep, "categorical", []) or [])
        needed += [c for c in [getattr(self.prep, "image", None)] if c] + list(getattr(self.prep, "sequence", []) or [])
        needed += list(self.prep.text)
        missing = [c for c in needed if c not in names]
        if missing:
            raise DataError(
                f"{path} lacks the input columns {', '.join(map(repr, missing))} the run was trained on; "
                f"it has: {', '.join(names)}"
            )
        df = collect(lf, path)
        if df.height == 0:
            raise DataError(f"{path} has no rows")
        image = getattr(self.prep, "image", None)
        if image and is_encoded(df.schema[image]):  # PNG / JPEG bytes: decoded to the run's image_shape
            where = os.path.dirname(os.path.abspath(path))
            df, _ = decode_frame(df, image, self.prep.image_shape, where=path, base_dir=where)
        return df

    def num_outputs(self) -> int:
        if self.prep.task == "classification":
            return len(self.prep.classes)
        if self.prep.task in ("language_model", "seq2seq"):
            return int(self.prep.vocab_size)
        return int(self.prep_dict.get("horizon") or 1)

    def target_scale(self) -> tuple[float, float]:
        t = self.prep.target or {}
        return float(t.get("mean", 0.0)), float(t.get("std", 1.0))

    def model_and_task(self, in_shape: tuple[int, ...], which: str = "best"):
        """(SplitModel with restored params and rest, task, step restored)."""
        from dlexp.build import build_model
        from dlexp.checkpoint import Checkpoints, abstract_of, saved_steps
        from dlexp.models.split import split_model
        from dlexp.tasks import make_task

        if which not in CHOICES:
            raise ConfigError(f"checkpoint={which!r} is not valid; choose one of {', '.join(CHOICES)}")
        if not saved_steps(self.run_dir):
            raise ConfigError(
                f"{self.run_dir} holds no checkpoint (trainer.checkpoint.enabled was false, or the "
                "run stopped before its first save)"
            )
        if self.cfg.trainer.get("seeds") is not None:
            raise ConfigError(
                f"{self.run_dir} trained trainer.seeds={self.cfg.trainer.seeds} as copies in one "
                "program; evaluate and predict take a single run (train the seed you want alone)"
            )
        model = build_model(
            self.cfg.model,
            in_shape=in_shape,
            num_outputs=self.num_outputs(),
            seed=int(self.cfg.seed),
            vocab_size=self.prep.vocab_size,
        )
        sm = split_model(model)
        abstract = abstract_of({"params": sm.params, "rest": sm.rest})
        store = Checkpoints(self.run_dir, read_only=True)
        item = "best" if which == "best" else "state"
        step, restored = store.latest_good(lambda s: store.restore_model(s, abstract, item))
        meta = store.meta(step)
        store.close()
        sm = type(sm)(sm.train_def, sm.eval_def, restored["params"], restored["rest"], sm.takes_rngs)
        task = make_task(
            self.prep.task,
            num_outputs=self.num_outputs(),
            target_scale=self.target_scale(),
            classes=self.prep.classes,
            model=model,
            loss=self.cfg.get("loss"),
            precision=self.cfg.trainer.get("precision", "float32"),
        ).for_data(self.prep.scale)  # a VAE's `auto` likelihood, resolved as the run did
        return sm, task, (best_step(meta, step, self.run_dir) if which == "best" else step)


def best_step(meta: dict, step: int, run_dir: str) -> int:
    """The step of the best evaluation a checkpoint holds; a run whose objective was never finite
    has none (its `best` item is the state at `step`), which is said, not shown as step -1."""
    copy = meta["copies"][0]
    if copy.get("best_value") is not None and copy["best_step"] >= 0:
        return copy["best_step"]
    metric = (meta.get("objective") or ["the objective"])[0]
    log.warning(
        "%s never had a finite %s: there is no best evaluation, so its parameters at step %d are used; "
        "they likely diverged (see its summary.json)",
        run_dir,
        metric,
        step,
    )
    return step


def load_run(run_dir: str, dataset_overrides: Sequence[str] = ()) -> SavedRun:
    """The run's saved config (with `dataset.k=v` overrides applied) and preparation."""
    from dlexp.data.prep import Prep

    config = os.path.join(run_dir, ".hydra", "config.yaml")
    if not os.path.isdir(run_dir):
        raise ConfigError(f"run dir {run_dir!r} does not exist (cwd: {os.getcwd()})")
    if not os.path.exists(config):
        raise ConfigError(f"{run_dir} is not a run dir: it has no .hydra/config.yaml")
    cfg = OmegaConf.load(config)
    assert isinstance(cfg, DictConfig), config
    for o in dataset_overrides:
        key, _, value = o.partition("=")
        if key.split(".", 1)[1] not in cfg.dataset:
            raise ConfigError(f"{key} is not a key of this run's dataset config; it has: {', '.join(cfg.dataset)}")
        OmegaConf.update(cfg, key, yaml.safe_load(value))  # "0.2" -> 0.2, "[a, b]" -> a list, like Hydra
    try:
        with open(os.path.join(run_dir, "prep.json")) as f:
            prep_dict = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{run_dir}/prep.json cannot be read ({e}); it is written when the data is loaded") from None
    prep = Prep.from_dict({k: v for k, v in prep_dict.items() if k not in ("source", "report")})
    if prep.text:
        from dlexp.data import text

        tok = text.load(run_dir, int((prep.tokenizer or {})["max_length"]))
        if text.digest(tok) != prep.tokenizer_digest:
            raise DataError(f"{run_dir}/{text.TOKENIZER_FILE} is not the tokenizer prep.json was prepared with")
        prep.attach_tokenizer(tok)
    return SavedRun(run_dir, cfg, prep, prep_dict)


def batched(fn: Callable, arrays: tuple[np.ndarray, ...], batch_size: int) -> list[Any]:
    """fn over fixed-size batches (the last one zero-padded: one compilation), outputs per batch."""
    n = int(arrays[0].shape[0])
    b = max(1, min(batch_size, n))
    out = []
    for start in range(0, n, b):
        chunk = [a[start : start + b] for a in arrays]
        pad = b - chunk[0].shape[0]
        if pad:
            chunk = [np.concatenate([c, np.zeros((pad, *c.shape[1:]), c.dtype)]) for c in chunk]
        out.append((fn(*map(jnp.asarray, chunk)), b - pad))
    return out


def outputs(sm: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs (logits, or standardized predictions) for every row of x, in eval mode."""
    from dlexp.tasks import make_predict

    predict = jax.jit(make_predict(sm))
    parts = batched(lambda xb: predict(sm.params, sm.rest, xb), (x,), batch_size)
    return np.concatenate([np.asarray(o)[:k] for o, k in parts])
