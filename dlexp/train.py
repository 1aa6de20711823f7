"""Hydra entry point: `python -m dlexp.train model=cnn`.

A recipe: validate the config, build data, model, optimizer and task, fit, test,
write the run dir, return the objective (the value a sweeper optimizes). A user
error (bad config, bad data) is one clear message and a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dlexp.config import TrainConfig, config_dir, register_configs, typed
from dlexp.errors import DlexpError

log = logging.getLogger("dlexp")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" is not news
register_configs()


def run(
    cfg: DictConfig | TrainConfig, run_dir: str, data: Any = None, copy_dirs: list[str] | None = None
) -> tuple[float, dict[str, Any]]:
    """Trains one run into `run_dir`; returns (objective value, summary). `data`: an
    already prepared data set (a cross-validation fold) instead of cfg.dataset. `copy_dirs`:
    a packed sweep's job dirs, one per copy of `trainer.copies`, each written as a run of its own
    (their summary.json: dlexp/sweeper/members.py)."""
    t0 = time.perf_counter()
    config_text = OmegaConf.to_yaml(OmegaConf.structured(cfg) if isinstance(cfg, TrainConfig) else cfg, resolve=True)
    cfg = typed(cfg)
    from dlexp import parallel

    parallel.configure_host(  # before the JAX backend starts
        cfg.trainer.parallel,
        os.path.join(cfg.paths.cache, "jax") if cfg.trainer.compile_cache else None,
        distributed=cfg.trainer.distributed,
    )
    import jax

    from dlexp import optim, resume, rundir
    from dlexp.build import build_model, model_summary
    from dlexp.copies import Hyper, check_one_graph, copy_specs, with_values
    from dlexp.data import load_dataset
    from dlexp.data.augment import make_augment
    from dlexp.data.footprint import footprint, memory_mb
    from dlexp.data.report import report_text
    from dlexp.hooks import build_hooks
    from dlexp.jobs import job_resources
    from dlexp.loggers import Writers, copy_writers, make_writers
    from dlexp.loggers.names import RunPlace, place_of
    from dlexp.loop.fit import fit
    from dlexp.loop.plan import plan_steps
    from dlexp.loop.records import CopyRecord
    from dlexp.models.split import has_conv, split_model
    from dlexp.quality.attach import fit_to_data
    from dlexp.tasks import make_task

    os.makedirs(run_dir, exist_ok=True)
    main = parallel.is_main_process()  # only process 0 writes files
    release_run_dir = lambda: None  # noqa: E731
    if main:
        if not copy_dirs:  # (a packed program's dir holds no checkpoint: its jobs' dirs do)
            resume.check_run_dir(run_dir, cfg.trainer.checkpoint.enabled)  # an earlier run is never overwritten
        release_run_dir = resume.claim(run_dir)
    # Where each run's records go and its name (a sweep job's: by its values); only process 0 writes.
    dirs = [run_dir, *(copy_dirs or [])]
    places = {d: place_of(d, own_overrides(d)) for d in dirs} if main else {}
    place = places.get(run_dir) or RunPlace(run_dir, "", "")
    if main:
        info = {**rundir.run_info(cfg.seed, jax.devices()), "resources": job_resources()}
        for d, p in places.items():
            os.makedirs(d, exist_ok=True)
            rundir.write_json(os.path.join(d, "run.json"), {**info, "name": p.name, "tensorboard": p.tensorboard})
    summary: dict[str, Any] = {"status": "running"}
    hooks: list = []
    writers, per_copy = Writers(), []
    try:
        writers = make_writers(cfg.logger, place, main and not copy_dirs)  # a packed program writes as its jobs
        # -------------------------------------------------------------- data
        data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
        loaded: dict[str, Any] = {}  # what loading cost each process (a fold's data comes loaded)
        if data is None:  # a cross-validation fold brings its own
            shards = parallel.data_shards(cfg.trainer, copies=copy_specs(cfg) is not None)
            rss_before = memory_mb()
            data = load_dataset(cfg.dataset, seed=data_seed, cache_dir=cfg.paths.cache, task=cfg.task, shards=shards)
            loaded = footprint(data, rss_before, jax.process_count())
            log.info("data read: %s", loaded["processes"])
        if main:
            for d in [run_dir, *(copy_dirs or [])]:  # how to prepare new data: beside every checkpoint
                rundir.write_json(os.path.join(d, "prep.json"), data.prep)
                if data.tokenizer is not None:  # a text column's tokenizer: tokenizer.json
                    from dlexp.data import text

                    text.save(data.tokenizer, d)
        log.info("data: %s, %s, input %s, %d outputs", data.task, data.sizes(), data.input_shape, data.num_outputs)
        report = report_text(data.prep)
        log.info("data report:\n%s", report)
        if cfg.trainer.cv.folds:  # K models on K folds; the objective is their mean (dlexp/crossval.py)
            from dlexp.crossval import fit_folds

            writers.text("data", report)
            summary = {**fit_folds(cfg, run_dir, data, run, writers), "wall_time_s": round(time.perf_counter() - t0, 3)}
            if cfg.logger.console:
                print_results(summary, run_dir)
            return summary["objective"]["value"], summary

        # -------------------------------------------------------------- model, layout, optimizer, task
        specs = copy_specs(cfg)  # trainer.seeds / trainer.copies: copies in one vmapped program
        copies = specs is not None
        cfgs = [with_values(cfg, s.values) for s in specs] if specs else [cfg]
        seeds = [c.seed for c in cfgs]
        models = [
            build_model(
                c.model,
                in_shape=data.input_shape,
                num_outputs=data.num_outputs,
                seed=c.seed,
                vocab_size=data.vocab_size,
            )
            for c in cfgs
        ]
        splits = [split_model(m) for m in models]  # once: the checks below and the loop share them
        if specs:
            check_one_graph([s.train_def for s in splits], specs)
        n_train = data.sizes()["train"]
        kind, n_dev = parallel.choose_parallel(
            cfg.trainer.parallel,
            has_conv=has_conv(models[0]),
            batch_size=min(cfg.trainer.batch_size, n_train),
            copies=len(seeds) if copies else 0,
        )
        layout = parallel.make_layout(kind, n_dev, copies=len(seeds) if copies else 0)
        plan = plan_steps(
            cfg.trainer,
            n_train,
            1 if copies else layout.num_devices,
            shard_sizes=data.shards.sizes["train"] if data.shards is not None else None,
        )
        tx, _ = optim.make_optimizer(cfg.optimizer, cfg.schedule, plan.total_steps)
        tasks = [
            make_task(
                data.task,
                num_outputs=data.num_outputs,
                target_scale=data.target_scale,
                classes=data.classes,
                model=models[0],
                loss=c.loss,
                precision=cfg.trainer.precision,
            )
            for c in cfgs
        ]
        tasks, judged = fit_to_data(tasks, cfg.quality, data, cfg.seed, cfg.objective, cfg.paths.cache)
        task = tasks[0]
        hypers = [Hyper(optim.hyperparameters(c.optimizer), t.hyperparameters()) for c, t in zip(cfgs, tasks)]
        schedules = [optim.make_schedule(h.optimizer["lr"], cfg.schedule, plan.total_steps) for h in hypers]
        if specs and data.stream is None:  # a streamed split refuses copies itself (dlexp/data/loader.py)
            from dlexp.sweeper.memory import check_copies_fit, check_packing_pays

            if copy_dirs and cfg.sweep.pack is None:
                check_packing_pays(layout.platform, has_conv(models[0]), len(specs))
            check_copies_fit(data, task, splits[0], tx, plan.batch_size, len(specs), cfg.sweep.memory_gb)
        summary_text = model_summary(models[0])  # walks the whole graph: once
        log.info("model:\n%s", summary_text)
        log.info(
            "plan: %d steps (%.1f epochs of %d), batch %d, %s over %d %s device(s)%s",
            plan.total_steps,
            plan.epochs,
            plan.steps_per_epoch,
            plan.batch_size,
            layout.kind,
            layout.num_devices,
            jax.default_backend(),
            f", {len(seeds)} copies: {', '.join(s.label for s in specs)}" if specs else "",
        )
        if copy_dirs:
            per_copy = [make_writers(cfg.logger, places.get(d, place), main) for d in copy_dirs]
        else:
            per_copy = [copy_writers(cfg.logger, place, s, main) for s in specs] if specs else [writers]
        for w in per_copy if copy_dirs else [writers]:
            for tag, text in (("data", report), ("config", config_text), ("model", summary_text)):
                w.text(tag, text)
        if specs and not copy_dirs:  # the job's own run, above its copies' runs
            writers.params(flat_config(cfg))
        for w, c in zip(per_copy, cfgs if len(cfgs) == len(per_copy) else [cfg] * len(per_copy)):
            w.params(flat_config(c))
            w.loss_chart(cfg.objective.metric)

        # -------------------------------------------------------------- fit and test
        objective = judged.pop("objective", None) or (cfg.objective.metric, str(cfg.objective.mode))
        hooks = build_hooks(
            cfg,
            run_dir,
            copies=copies,
            copy_dirs=copy_dirs,
            partial_data=data.shards is not None and not data.shards.spec.all_local,
        )
        result, _best = fit(
            task=task,
            splits=splits,
            conv=has_conv(models[0]),
            copies=[CopyRecord(c.seed, s.label, s.values) for c, s in zip(cfgs, specs)]
            if specs
            else [CopyRecord(cfg.seed)],
            tx=tx,
            hypers=hypers,
            schedules=schedules,
            data=data,
            plan=plan,
            trainer=cfg.trainer,
            objective=objective,
            layout=layout,
            writers=per_copy,
            hooks=hooks,
            augment=make_augment(data.augment),
        )  # dataset.augment: images, training batches only
        summary = {**result, "data": loaded, "wall_time_s": round(time.perf_counter() - t0, 3)}
        if judged:
            summary["quality"] = judged
        if copy_dirs:  # a packed sweep job: each copy is compared by its own job's overrides
            hps = [hparams_of(cfg, plan.batch_size, job_overrides(d)) for d in copy_dirs]
            record_results(summary, per_copy, hps, places.get(copy_dirs[0], place).swept, None)
        else:
            hps = [hparams_of(cfg, plan.batch_size, own_overrides(run_dir))] * len(per_copy)
            record_results(summary, per_copy, hps, place.swept, place.name if specs else None)
        if cfg.logger.console:
            print_results(summary, run_dir)
        return summary["objective"]["value"], summary
    except DlexpError as e:
        summary = {"status": "failed", "error": str(e), "error_type": type(e).__name__}
        raise
    except BaseException as e:
        summary = {"status": "failed", "error": f"{type(e).__name__}: {e}", "error_type": type(e).__name__}
        raise
    finally:
        summary.setdefault("wall_time_s", round(time.perf_counter() - t0, 3))
        for h in hooks:  # e.g. let the last asynchronous checkpoint finish after a failure
            getattr(h, "close", lambda: None)()
        if main:
            rundir.write_json(os.path.join(run_dir, "summary.json"), summary)  # (a packed job's: members.py)
            # The files that describe each run, as artifacts (MLflow): a packed program's are its jobs'.
            for d, w in zip(copy_dirs, per_copy) if copy_dirs else [(run_dir, writers)]:
                w.artifacts([os.path.join(d, f) for f in ("summary.json", "run.json", "prep.json")])
        status = summary.get("status", "failed")
        own = [c.get("status", status) for c in summary.get("copies", [])]  # a copy may fail while its job completes
        closing = {id(writers): (writers, status)}
        closing.update((id(w), (w, own[i] if i < len(own) else status)) for i, w in enumerate(per_copy))
        for w, ended in closing.values():
            w.close(status=ended)
        release_run_dir()


def copy_results(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each copy's part of a summary (a single run is its own one copy)."""
    return summary.get("copies") or [summary]


def record_results(
    summary: dict[str, Any], writers: list, hparams: list[dict[str, Any]], swept: tuple[str, ...], group: str | None
) -> None:
    """Each copy's best evaluation (`val_best/`, at its step) and its HParams entry: the swept keys
    as columns, the objective first among the metrics. Copies of one job share its `group`."""
    from dlexp.loggers.base import Comparison
    from dlexp.loggers.layout import best_tags, comparison_metrics, headline, split_tags

    for w, c, hp in zip(writers, copy_results(summary), hparams):
        objective = c["objective"]
        best = best_tags(c["best"]["val"], objective["metric"], objective["value"])
        w.scalars(c["best"]["step"], best)
        metrics = {**split_tags("test", headline(c["test"])), **best}
        typed = {**hp, **c.get("values", {}), **({"seed": c["seed"]} if "seed" in c else {})}
        w.hparams(typed, metrics, Comparison(swept, comparison_metrics(metrics, objective["metric"]), group))


def print_results(summary: dict[str, Any], run_dir: str) -> None:
    from dlexp.crossval import fold_rows, headline, mean_std_rows
    from dlexp.loggers.console import summary_table

    o = summary["objective"]
    if "cv" in summary:
        folds = summary["cv"]["folds"]
        print(f"\n== cross-validation: {folds} folds ==\n" + summary_table(fold_rows(summary), "fold"), file=sys.stderr)
        print(f"mean ± std over the {folds} folds:\n" + summary_table(mean_std_rows(summary)), file=sys.stderr)
        print(
            f"objective {o['metric']} = {o['value']:.6g} ± {o['std']:.6g} over {folds} folds  (run dir: {run_dir})",
            file=sys.stderr,
        )
        return
    if "copies" in summary:
        rows = {
            c["label"] + (" (failed)" if c["status"] == "failed" else ""): headline(c["test"])
            for c in summary["copies"]
        }
        rows["mean"] = {k[5:]: v for k, v in summary["mean"].items() if k.startswith("test/") and "/" not in k[5:]}
        rows["std"] = {k[5:]: v for k, v in summary["std"].items() if k.startswith("test/") and "/" not in k[5:]}
        print("test metrics of each copy's best state:\n" + summary_table(rows, "copy"), file=sys.stderr)
        print(
            f"objective {o['metric']} = {o['value']} +- {o['std']} over {len(summary['copies'])} copies  "
            f"(run dir: {run_dir})",
            file=sys.stderr,
        )
        return
    rows = {"train (last)": summary["final"]["train"], "val (best)": summary["best"]["val"], "test": summary["test"]}
    print(summary_table({split: headline(m) for split, m in rows.items()}), file=sys.stderr)
    print(f"objective {o['metric']} = {o['value']}  (run dir: {run_dir})", file=sys.stderr)


def hparams_of(cfg: TrainConfig, batch_size: int, overrides: list[str]) -> dict[str, Any]:
    """The hyperparameters a run is compared by, with their types: the key choices (the batch
    size the run actually used) and its command-line overrides, each read back from the
    resolved config (so `optimizer.lr=1e-3` is the number 0.001; a group choice stays its name)."""
    from dlexp.loggers.names import split_override

    resolved = OmegaConf.structured(cfg) if isinstance(cfg, TrainConfig) else cfg
    hp: dict[str, Any] = {
        "model": str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1],
        "dataset": str(cfg.dataset.get("_target_", "?")).rsplit(".", 1)[-1],
        "optimizer": str(cfg.optimizer.get("_target_", "?")).rsplit(".", 1)[-1],
        "optimizer.lr": cfg.optimizer.get("lr"),
        "trainer.batch_size": batch_size,
        "seed": cfg.seed,
    }
    for o in overrides:
        key, text = split_override(o)
        if key.startswith("hydra") or key == "trainer.batch_size":
            continue
        value = OmegaConf.select(resolved, key, default=None, throw_on_missing=False)
        hp[key] = value if isinstance(value, (int, float, bool, str)) else text
    return hp


def own_overrides(run_dir: str) -> list[str]:
    """A run's own overrides: those its .hydra/ records (a sweep job run inside a packed
    program's process has its own there), else this Hydra job's ([] outside Hydra)."""
    if os.path.exists(os.path.join(run_dir, ".hydra", "overrides.yaml")):
        return job_overrides(run_dir)
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def flat_config(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as dotted keys (MLflow's params)."""
    tree = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            flat[prefix[:-1]] = node

    walk(tree, "")
    return flat


def job_overrides(job_dir: str) -> list[str]:
    """A packed job's own overrides, as the sweeper wrote them into its .hydra/."""
    from omegaconf import ListConfig

    node = OmegaConf.load(os.path.join(job_dir, ".hydra", "overrides.yaml"))
    return [str(o) for o in node] if isinstance(node, ListConfig) else []


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from hydra.types import RunMode

    from dlexp import jobs
    from dlexp.hooks.stopping import EXIT_PREEMPTED

    hc = HydraConfig.get()
    run_dir = hc.runtime.output_dir
    sweep_job = hc.mode == RunMode.MULTIRUN
    if sweep_job:
        jobs.share_machine(hc)  # its own cores / GPUs when jobs run side by side; before JAX starts
    if cfg.get("sweep", {}).get("members"):  # a packed group of sweep jobs (dlexp/sweeper/members.py)
        from dlexp.sweeper.members import run_members

        return run_members(cfg, run_dir)
    try:
        value, summary = run(cfg, run_dir)
    except Exception as e:
        if sweep_job:  # recorded as failed; the sweep goes on (dlexp.callbacks.SweepReport exits non-zero)
            return jobs.job_failed(cfg, run_dir, e)
        if not isinstance(e, DlexpError):
            raise
        print(f"dlexp error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    if summary["status"] == "preempted":  # requeue-friendly: saved, and says how to go on
        print(
            f"dlexp: preempted at step {summary['steps']}; checkpoint saved. Run the same command again "
            f"(or with trainer.resume={run_dir}) to continue.",
            file=sys.stderr,
        )
        sys.exit(EXIT_PREEMPTED)
    return value


def cli() -> None:
    """`python -m dlexp.train`: a misspelt schema key is named before Hydra starts; a config
    Hydra rejects (a bad value, an unknown option) exits 2 like every user error, with
    Hydra's own message."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlexp.config import check_overrides, open_target_overrides
    from dlexp.resume import add_run_dir_for_resume

    conf = config_dir()
    groups = {d for d in os.listdir(conf) if os.path.isdir(os.path.join(conf, d))}

    try:
        check_overrides(sys.argv[1:], groups)
    except DlexpError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.argv[1:] = open_target_overrides(add_run_dir_for_resume(sys.argv[1:]))  # see both functions

    def before_the_job(e: BaseException) -> bool:
        """Whether Hydra failed composing the config, not inside the job (run_job: a crash, exit 1)."""
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "run_job":
                return False
            tb = tb.tb_next
        return True

    try:
        main()
    except SystemExit as e:
        # Hydra prints its message and calls sys.exit(1) inside `except`: the cause is e.__context__.
        cause = e.__context__
        if e.code == 1 and isinstance(cause, (HydraException, OmegaConfBaseException)) and before_the_job(cause):
            sys.exit(DlexpError.exit_code)
        raise


if __name__ == "__main__":
    cli()
