"""Vectorized seeds: `trainer.seeds=[0,1,2,3]` (or a count) trains that many
independent copies of one run in ONE compiled program, `jax.vmap` over the state.

Small models leave a CPU or GPU mostly idle between dispatches; stacking the copies
turns S programs of tiny matmuls into one program of S-times-bigger ones, so S seeds
cost little more than one. What each copy is, precisely:

  copy s of `seed=b trainer.seeds=[..., s, ...]`  ==  the single run `seed=s data_seed=b`

Each copy has its own init, dropout keys and batch order (all from its seed); the
data split and its preparation are shared (from `data_seed`, default the base seed),
since the copies train on one resident data set. tests/test_seeds.py checks the
equality to float tolerance. Each copy logs as its own TensorBoard run (tb/seed_<s>)
and its own rows of metrics.jsonl (with a "seed" field); the summary gives every copy
and the mean and std over copies.

Not supported with copies: hooks (checkpoints, early stopping), the pmap path.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from dlexp.data.loader import EvalSet, ResidentLoader, epoch_order, train_targets
from dlexp.errors import ConfigError, TrainingError
from dlexp.kernels import compiler_options, of_trainer
from dlexp.metrics import add_sums
from dlexp.tasks.base import count_params, split_model
from dlexp.optim import log_steps, rates_at
from dlexp.trainer import better, make_progress, parse_objective, zeros_maker
from dlexp.writers import JsonlWriter, TensorBoardWriter, Writers


def seed_list(seeds: Any, base: int) -> list[int]:
    """`trainer.seeds`: a count n (seeds base .. base+n-1) or an explicit list."""
    if isinstance(seeds, bool):
        raise ConfigError(f"trainer.seeds={seeds!r} must be a count (4) or a list of seeds ([0,1,2,3])")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"trainer.seeds={seeds} must be at least 1 (or a list of seeds)")
        return [base + i for i in range(seeds)]
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ConfigError(f"trainer.seeds={seeds!r} must be a count (4) or a list of integer seeds ([0,1,2,3])") from None
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"trainer.seeds={out} must be a non-empty list of distinct seeds")
    return out


class SeedJsonl(JsonlWriter):
    """metrics.jsonl rows of one copy, tagged with its seed."""

    def __init__(self, path: str, seed: int):
        super().__init__(path)
        self.seed = seed

    def scalars(self, step: int, values: dict[str, float]) -> None:
        super().scalars(step, {"seed": self.seed, **values})


def copy_writers(logger: Any, run_dir: str, seed: int) -> Writers:
    ws: list[Any] = []
    if logger.tensorboard:
        ws.append(TensorBoardWriter(os.path.join(run_dir, "tb", f"seed_{seed}")))
    if logger.jsonl:
        ws.append(SeedJsonl(os.path.join(run_dir, "metrics.jsonl"), seed))
    return Writers(ws)


class CopiesLoader:
    """One resident training split, read in a different order by each copy (its seed)."""

    in_axes = (None, None, 0, None)  # x, y shared; order per copy; start shared

    def __init__(self, base: ResidentLoader, seeds: Sequence[int], sharding):
        self.base, self.seeds, self.sharding = base, list(seeds), sharding
        self._epoch, self._orders = None, None

    def call_args(self, epoch: int, start: int, n: int):
        if epoch != self._epoch:
            orders = np.stack([epoch_order(self.base.n, s, epoch, self.base.batch_size) for s in self.seeds])
            self._epoch, self._orders = epoch, jax.device_put(orders, self.sharding)
        return (self.base.x, self.base.y, self._orders, np.int32(start))

    def batch(self, args, i):
        return self.base.batch(args, i)


def copies_mesh(num_devices: int, copies: int):
    """(per-copy sharding, shared sharding): copies spread over the devices when they divide evenly."""
    devices = jax.local_devices()
    n = num_devices if num_devices > 1 and copies % num_devices == 0 else 1
    mesh = jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,), devices=devices[:n])
    return NamedSharding(mesh, P("data")), NamedSharding(mesh, P())


def stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def take(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda a: a[i], tree)


def make_copy_calls(train_step: Callable, loader: CopiesLoader) -> Callable:
    """(state, acc, args, key, n) -> (state, acc): n steps of ONE copy; the caller vmaps it.

    Pure, like the trainer's step: the key is the copy's dropout root, folded with the
    step number exactly as a single run folds it.
    """

    def one_step(state, acc, args, key, i):
        xb, yb = loader.batch(args, i)
        state, sums = train_step(state, xb, yb, jax.random.fold_in(key, state["step"]))
        return state, add_sums(acc, sums)

    def copy_calls(state, acc, args, key, n: int):
        if n == 1:
            return one_step(state, acc, args, key, 0)

        def body(carry, i):
            return one_step(*carry, args, key, i), None

        (state, acc), _ = jax.lax.scan(body, (state, acc), jnp.arange(n))
        return state, acc

    return copy_calls


def fit_copies(
    *,
    task: Any,
    models: Sequence[Any],
    seeds: Sequence[int],
    tx: Any,
    schedule: Callable[[int], float],
    data: Any,
    plan: Any,
    cfg: Any,
    objective: tuple[str, str],
    num_devices: int,
    writers: Sequence[Writers],
) -> dict[str, Any]:
    """Trains len(seeds) copies (models[i] initialised with seeds[i]) as one vmapped program.

    The host side mirrors `dlexp.trainer.fit` per copy: the same log and eval cadence,
    each copy's own best state (by the objective), each copy's test of its best state.
    """
    t_start = time.perf_counter()
    obj_metric, obj_mode = objective
    obj_split, obj_name = parse_objective(obj_metric, task)
    S = len(seeds)
    per_copy, shared = copies_mesh(num_devices, S)

    # ------------------------------------------------------------------ data and state
    train = CopiesLoader(ResidentLoader(data.x["train"], train_targets(data), plan.batch_size, seeds[0], shared),
                         seeds, per_copy)
    evals = {s: EvalSet(data.x[s], data.y[s], cfg.eval_batch_size, shared, weights=data.sample_weights(s))
             for s in ("val", "test")}
    splits = [split_model(m) for m in models]
    sm = splits[0]  # the graphdefs are the same for every copy
    state = jax.device_put(stack([task.init_state(s, tx) for s in splits]), per_copy)
    keys = jax.device_put(jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds]), per_copy)

    # ------------------------------------------------------------------ compiled steps
    train_step = task.make_train_step(sm, tx)
    eval_step = task.make_eval_step(sm)
    copy_calls = make_copy_calls(train_step, train)

    kernels, width = of_trainer(cfg, per_copy.mesh.devices.flat[0].platform)
    options = compiler_options(kernels, width)

    @functools.partial(jax.jit, static_argnames="n", donate_argnums=(0, 1), compiler_options=options)
    def train_fn(state, acc, args, keys, n):
        return jax.vmap(functools.partial(copy_calls, n=n), in_axes=(0, 0, CopiesLoader.in_axes, 0))(
            state, acc, args, keys)

    @functools.partial(jax.jit, donate_argnums=0, compiler_options=options)
    def eval_fn(acc, params, rest, x, y, w, b):
        one = lambda a, p, r: add_sums(a, eval_step(p, r, x[b], y[b], w[b]))
        return jax.vmap(one)(acc, params, rest)

    @jax.jit
    def keep_best(improved, new, old):
        return jax.tree.map(lambda n, o: jnp.where(improved.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)

    one_sums = jax.eval_shape(lambda s, xy: train_step(s, *xy, keys[0])[1], take(state, 0), train.base.example())
    eval_shapes = jax.eval_shape(eval_step, sm.params, sm.rest, *evals["val"].example())
    train_zeros = zeros_maker(one_sums, per_copy, lead=(S,))
    eval_zeros = zeros_maker(eval_shapes, per_copy, lead=(S,))

    def evaluate(params, rest, split: str) -> list[dict[str, float]]:
        es = evals[split]
        acc = eval_zeros()
        for b in range(es.num_batches):
            acc = eval_fn(acc, params, rest, es.x, es.y, es.w, b)
        sums = jax.device_get(acc)
        return [task.finalize(take(sums, i)) for i in range(S)]

    # ------------------------------------------------------------------ loop
    lr_at = rates_at(schedule, log_steps(plan.log_every, plan.total_steps))
    progress = make_progress(cfg.progress, plan.total_steps)
    acc = train_zeros()
    step = epoch = last_log = last_eval = 0
    window_start, window_steps, first_step_s = time.perf_counter(), 0, None
    best_value: list[float | None] = [None] * S
    best_step, best_val = [-1] * S, [dict() for _ in range(S)]
    last_train: list[dict] = [dict() for _ in range(S)]
    last_val: list[dict] = [dict() for _ in range(S)]
    best_state = None
    K = 1 if cfg.steps_per_call == "auto" else int(cfg.steps_per_call)  # fused copies: not measured, so 1

    while step < plan.total_steps:
        n = plan.call_length(step, epoch, K)
        state, acc = train_fn(state, acc, train.call_args(epoch, plan.in_epoch(step, epoch), n), keys, n=n)
        if first_step_s is None:
            jax.block_until_ready(state)
            first_step_s = time.perf_counter() - t_start
            window_start = time.perf_counter()
        step += n
        window_steps += n
        progress.update(n)
        epoch = plan.epoch_after(step, epoch)

        if plan.crossed(step, last_log, plan.log_every):
            sums = jax.device_get(acc)
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            steps_in = max(window_steps, 1)
            grad_norms = sums.pop("grad_norm") / steps_in
            for i, seed in enumerate(seeds):
                last_train[i] = task.finalize(take(sums, i))
                if not math.isfinite(last_train[i]["loss"]):
                    raise TrainingError(
                        f"the train loss of seed {seed} became {last_train[i]['loss']} between steps {last_log} "
                        f"and {step}; lower optimizer.lr, set optimizer.clip_norm, or check the data")
                writers[i].scalars(step, {
                    **{f"train/{k}": v for k, v in last_train[i].items()},
                    "train/grad_norm": float(grad_norms[i]),
                    "train/lr": lr_at(step),
                    "train/samples_per_s": steps_in * plan.batch_size / elapsed,
                    "train/epoch": step / plan.steps_per_epoch,
                })
            acc = train_zeros()
            window_start, window_steps, last_log = time.perf_counter(), 0, step

        if plan.crossed(step, last_eval, plan.eval_every):
            last_val = evaluate(state["params"], state["rest"], "val")
            improved = []
            for i in range(S):
                writers[i].scalars(step, {f"val/{k}": v for k, v in last_val[i].items()})
                value = (last_val[i] if obj_split == "val" else last_train[i]).get(obj_name, float("nan"))
                improved.append(better(value, best_value[i], obj_mode))
                if improved[-1]:
                    best_value[i], best_step[i], best_val[i] = value, step, dict(last_val[i])
            current = (state["params"], state["rest"])
            best_state = jax.tree.map(jnp.copy, current) if best_state is None else best_state
            best_state = keep_best(jnp.asarray(improved), current, best_state)
            last_eval = step
    progress.close()
    train_s = time.perf_counter() - t_start

    # ------------------------------------------------------------------ final evaluation
    never = jnp.asarray([b is None for b in best_value])  # objective never finite: test the final state
    best_state = keep_best(never, (state["params"], state["rest"]), best_state)
    test = evaluate(*best_state, "test")
    copies = []
    for i, seed in enumerate(seeds):
        writers[i].scalars(step, {f"test/{k}": v for k, v in test[i].items()})
        copies.append({
            "seed": seed,
            "objective": {"metric": obj_metric, "mode": obj_mode, "value": best_value[i]},
            "best": {"step": best_step[i] if best_value[i] is not None else step, "val": best_val[i]},
            "final": {"step": step, "train": last_train[i], "val": last_val[i]},
            "test": test[i],
        })
    values = [c["objective"]["value"] for c in copies]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {
        "status": "completed",
        "seeds": list(seeds),
        "objective": {"metric": obj_metric, "mode": obj_mode,
                      "value": float(np.mean(finite)) if len(finite) == S else float("nan"),
                      "std": float(np.std(finite)) if len(finite) == S else float("nan")},
        **mean_std(copies),
        "copies": copies,
        "steps": step,
        "epochs": round(step / plan.steps_per_epoch, 3),
        "batch_size": plan.batch_size,
        "num_params": count_params(sm.params),
        "devices": per_copy.mesh.devices.size,
        "cpu_kernels": kernels,
        "cpu_vector_width": width,
        "time_to_first_step_s": round(first_step_s or 0.0, 3),
        "train_time_s": round(train_s, 3),
        "samples_per_s": round(S * step * plan.batch_size / max(train_s - (first_step_s or 0.0), 1e-9), 1),
    }


def flat_metrics(copy: dict) -> dict[str, float]:
    """The numbers a copy is compared by: test/* and best/val/*."""
    return {**{f"test/{k}": v for k, v in copy["test"].items()},
            **{f"best/val/{k}": v for k, v in copy["best"]["val"].items()}}


def mean_std(copies: list[dict]) -> dict[str, dict[str, float]]:
    rows = [flat_metrics(c) for c in copies]
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {"mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
            "std": {k: float(np.std([r[k] for r in rows])) for k in keys}}


def train_seeds(cfg: Any, run_dir: str, *, task: Any, tx: Any, schedule: Callable, data: Any, plan: Any,
                objective: tuple[str, str], num_devices: int, hparams: dict[str, Any]) -> dict[str, Any]:
    """`dlexp.train.run`'s branch for `trainer.seeds`: one model per seed, fit them as copies,
    log each copy as its own TensorBoard run with its HParams entry, print the table."""
    import sys

    from dlexp.build import build_model
    from dlexp.writers import summary_table

    seeds = seed_list(cfg.trainer.seeds, cfg.seed)
    models = [build_model(cfg.model, in_shape=data.input_shape, num_outputs=data.num_outputs, seed=s) for s in seeds]
    main_process = jax.process_index() == 0
    writers = [copy_writers(cfg.logger, run_dir, s) if main_process else Writers() for s in seeds]
    try:
        summary = fit_copies(task=task, models=models, seeds=seeds, tx=tx, schedule=schedule, data=data, plan=plan,
                             cfg=cfg.trainer, objective=objective, num_devices=num_devices, writers=writers)
        for w, c in zip(writers, summary["copies"]):
            metrics = flat_metrics(c)
            w.scalars(summary["steps"], {k: v for k, v in metrics.items() if k.startswith("best/")})
            w.hparams({**hparams, "seed": c["seed"]}, metrics)
    finally:
        for w in writers:
            w.close()
    if cfg.logger.console:
        rows = {f"seed {c['seed']}": c["test"] for c in summary["copies"]}
        rows["mean"] = {k[5:]: v for k, v in summary["mean"].items() if k.startswith("test/")}
        rows["std"] = {k[5:]: v for k, v in summary["std"].items() if k.startswith("test/")}
        print("test metrics of each copy's best state:\n" + summary_table(rows), file=sys.stderr)
        o = summary["objective"]
        print(f"objective {o['metric']} = {o['value']} +- {o['std']} over seeds {seeds}  (run dir: {run_dir})",
              file=sys.stderr)
    return summary
