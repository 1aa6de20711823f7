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

from dlexp.config import enum_value, register_configs
from dlexp.errors import DlexpError

log = logging.getLogger("dlexp")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" is not news
register_configs()


def run(cfg: DictConfig, run_dir: str, data: Any = None) -> tuple[float, dict[str, Any]]:
    """Trains one run into `run_dir`; returns (objective value, summary). `data`: an
    already prepared data set (a cross-validation fold) instead of cfg.dataset."""
    t0 = time.perf_counter()
    from dlexp import parallel

    parallel.configure_host(  # before the JAX backend starts
        enum_value(cfg.trainer.parallel),
        os.path.join(cfg.paths.cache, "jax") if cfg.trainer.compile_cache else None,
        distributed=cfg.trainer.distributed,
    )
    import jax

    from dlexp import optim, resume, rundir
    from dlexp.build import build_model, model_summary
    from dlexp.data import load_dataset
    from dlexp.data.augment import make_augment
    from dlexp.data.report import report_text
    from dlexp.tasks import make_task
    from dlexp.trainer import fit, has_conv, plan_steps
    from dlexp.writers import make_writers, summary_table

    os.makedirs(run_dir, exist_ok=True)
    main = parallel.is_main_process()  # only process 0 writes files
    release_run_dir = lambda: None  # noqa: E731
    if main:
        resume.check_run_dir(run_dir, cfg.trainer.checkpoint.enabled)  # an earlier run there is never overwritten
        release_run_dir = resume.claim(run_dir)
    from dlexp.jobs import job_resources

    if main:
        rundir.write_json(os.path.join(run_dir, "run.json"),
                          {**rundir.run_info(cfg.seed, jax.devices()), "resources": job_resources()})
    writers = make_writers(cfg.logger, run_dir, main)
    summary: dict[str, Any] = {"status": "running"}
    hooks: list = []
    try:
        # -------------------------------------------------------------- data
        data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
        if data is None:  # a cross-validation fold brings its own
            data = load_dataset(cfg.dataset, seed=data_seed, cache_dir=cfg.paths.cache, task=enum_value(cfg.task))
        if main:
            rundir.write_json(os.path.join(run_dir, "prep.json"), data.prep)
        log.info("data: %s, %s, input %s, %d outputs", data.task, data.sizes(), data.input_shape, data.num_outputs)
        report = report_text(data.prep)
        log.info("data report:\n%s", report)
        writers.text("data", report)
        if cfg.trainer.cv.folds:  # K models on K folds; the objective is their mean (dlexp/crossval.py)
            from dlexp.crossval import fit_folds

            summary = {**fit_folds(cfg, run_dir, data, run, writers), "wall_time_s": round(time.perf_counter() - t0, 3)}
            return summary["objective"]["value"], summary

        # -------------------------------------------------------------- model, optimizer, task
        model = build_model(cfg.model, in_shape=data.input_shape, num_outputs=data.num_outputs, seed=cfg.seed)
        kind, n_dev = parallel.choose_parallel(enum_value(cfg.trainer.parallel), has_conv=has_conv(model),
                                               batch_size=min(cfg.trainer.batch_size, data.sizes()["train"]))
        layout = parallel.make_layout(kind, n_dev)
        plan = plan_steps(cfg.trainer, data.sizes()["train"], layout.num_devices)
        tx, schedule = optim.make_optimizer(cfg.optimizer, cfg.schedule, plan.total_steps)
        task = make_task(data.task, num_outputs=data.num_outputs, target_scale=data.target_scale,
                         classes=data.classes, model=model, loss=cfg.loss,
                         precision=enum_value(cfg.trainer.precision))
        summary_text = model_summary(model)  # walks the whole graph: once
        log.info("model:\n%s", summary_text)
        log.info("plan: %d steps (%.1f epochs of %d), batch %d, %s over %d %s device(s)",
                 plan.total_steps, plan.epochs, plan.steps_per_epoch, plan.batch_size, layout.kind,
                 layout.num_devices, jax.default_backend())
        writers.text("config", OmegaConf.to_yaml(cfg, resolve=True))
        writers.text("model", summary_text)

        # -------------------------------------------------------------- fit and test
        objective = (cfg.objective.metric, enum_value(cfg.objective.mode))
        if cfg.trainer.seeds is not None:  # several seeds as copies in one vmapped program
            from dlexp.vectorized import train_seeds

            summary = train_seeds(cfg, run_dir, task=task, tx=tx, schedule=schedule, data=data, plan=plan,
                                  objective=objective, num_devices=layout.num_devices, hparams=hparams_of(cfg))
            summary["wall_time_s"] = round(time.perf_counter() - t0, 3)
            return summary["objective"]["value"], summary
        hooks = build_hooks(cfg, run_dir)
        result, _best = fit(
            task=task, model=model, tx=tx, schedule=schedule, data=data, plan=plan, cfg=cfg.trainer,
            objective=objective, seed=cfg.seed, layout=layout, writers=writers, hooks=hooks,
            augment=make_augment(data.augment),  # dataset.augment: images, training batches only
        )
        summary = {**result, "wall_time_s": round(time.perf_counter() - t0, 3)}
        final = {f"test/{k}": v for k, v in result["test"].items()}
        best = {f"best/val/{k}": v for k, v in result["best"]["val"].items()}
        writers.scalars(result["steps"], best)  # the HParams dashboard reads these tags
        writers.hparams(hparams_of(cfg), {**final, **best})
        if cfg.logger.console:
            rows = {"train (last)": result["final"]["train"], "val (best)": result["best"]["val"], "test": result["test"]}
            rows = {split: {k: v for k, v in m.items() if "/" not in k} for split, m in rows.items()}  # no per-class
            print(summary_table(rows), file=sys.stderr)
            print(f"objective {objective[0]} = {result['objective']['value']}  (run dir: {run_dir})", file=sys.stderr)
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
            rundir.write_json(os.path.join(run_dir, "summary.json"), summary)
        writers.close()
        release_run_dir()


def build_hooks(cfg: DictConfig, run_dir: str) -> list:
    """The hooks a run gets from its config (checkpoints, early stopping, plots, ...)."""
    from dlexp.checkpoint import CheckpointHook
    from dlexp.inspection import inspection_hooks
    from dlexp.plots import plot_hooks
    from dlexp.resume import resume_source
    from dlexp.stopping import EarlyStopping, Preemption

    hooks: list = [Preemption()]  # SIGTERM / SIGINT: stop after this step, save, status "preempted"
    if cfg.logger.profile_steps:  # a JAX profiler trace of a few steps (debug=profile)
        from dlexp.profile import ProfileHook

        hooks.append(ProfileHook(os.path.join(run_dir, "tb"), cfg.logger.profile_steps))
    hooks += inspection_hooks(cfg)  # histograms, update ratios, embeddings, the test confusion matrix
    hooks += plot_hooks(cfg)  # confusion matrix, ROC, predictions, GAN samples, reconstructions as images
    es = cfg.trainer.early_stopping
    if es.patience is not None:
        hooks.append(EarlyStopping(es.patience, es.min_delta))
    source = resume_source(cfg, run_dir)  # this dir's checkpoints, trainer.resume's, or none
    if cfg.trainer.checkpoint.enabled:  # last: it saves the state the hooks above stopped at
        hooks.append(CheckpointHook(run_dir, cfg.trainer.checkpoint, seed=cfg.seed, resume_from=source))
    return hooks


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """The hyperparameters a run is compared by: its command-line overrides plus the key choices."""
    hp: dict[str, Any] = {
        "model": str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1],
        "dataset": str(cfg.dataset.get("_target_", "?")).rsplit(".", 1)[-1],
        "optimizer": str(cfg.optimizer.get("_target_", "?")).rsplit(".", 1)[-1],
        "lr": cfg.optimizer.get("lr"),
        "batch_size": cfg.trainer.batch_size,
        "seed": cfg.seed,
    }
    try:
        for o in HydraConfig.get().overrides.task:
            k, _, v = o.lstrip("+~").partition("=")
            hp[k] = v
    except ValueError:
        pass
    return hp


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from hydra.types import RunMode

    from dlexp import jobs
    from dlexp.stopping import EXIT_PREEMPTED

    hc = HydraConfig.get()
    run_dir = hc.runtime.output_dir
    sweep_job = hc.mode == RunMode.MULTIRUN
    if sweep_job:
        jobs.share_machine(hc)  # its own cores / GPUs when jobs run side by side; before JAX starts
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
        print(f"dlexp: preempted at step {summary['steps']}; checkpoint saved. Run the same command again "
              f"(or with trainer.resume={run_dir}) to continue.", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    return value


def cli() -> None:
    """`python -m dlexp.train`: a misspelt schema key is named before Hydra starts."""
    from dlexp.config import check_overrides

    conf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
    groups = {d for d in os.listdir(conf) if os.path.isdir(os.path.join(conf, d))} if os.path.isdir(conf) else set()
    from dlexp.resume import add_run_dir_for_resume

    try:
        check_overrides(sys.argv[1:], groups)
    except DlexpError as e:
        print(f"dlexp error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.argv[1:] = add_run_dir_for_resume(sys.argv[1:])  # trainer.resume=<dir> continues in <dir>
    main()


if __name__ == "__main__":
    cli()
