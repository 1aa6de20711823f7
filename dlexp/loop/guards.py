"""The non-finite guard of the train step: pure functions the loop jits around any task's step.

A step whose loss or gradient is NaN or Inf is flagged inside the compiled call, so the
host learns the exact step at its next log without a sync per step. With
`trainer.nan_policy=skip` the flagged update is dropped (the state keeps its values,
only the step counter moves on, so the batch order and dropout keys stay those of an
uninterrupted run) and its metrics are left out of the window.

Skipping cannot save every run, and the loop fails a copy (as the stop policy would) when:
its state holds a non-finite value at a log (an update overflowed with a finite loss and
gradient), or its val loss is never finite: `NEVER_FINITE_EVALS` non-finite evaluations in a
row before any finite one, or a run that ends without one (finite parameters so large that
every update overflows and is skipped).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from dlexp.metrics import add_sums

GUARD_KEYS = ("nonfinite", "first_nonfinite")  # sums the guard adds; not metrics of the task
NEVER_FINITE_EVALS = 3  # val evaluations in a row with a non-finite loss, and none finite before: the copy fails


def guard_step(old: dict, new: dict, sums: dict, *, skip: bool, active=None) -> tuple[dict, dict]:
    """(state, sums) after one step: flags a non-finite loss or gradient and, under skip, undoes it.

    `active` (copies only): False for a copy that has stopped or failed; its update is
    undone as well, and its steps add nothing to the window's sums.
    """
    bad = ~(jnp.isfinite(sums["loss"]) & jnp.isfinite(sums["grad_norm"]))
    frozen = bad if active is None else bad | ~active
    if skip:
        kept = jax.tree.map(lambda a, b: jnp.where(frozen, a, b), old, new)
        new = {**kept, "step": new["step"]} if "step" in new else kept
        sums = jax.tree.map(lambda s: jnp.where(frozen, jnp.zeros_like(s), s), sums)
    if active is not None:
        bad = bad & active
    # The update that made step N (1-based, as the loop counts steps); 0 means none.
    first = jnp.where(bad, old["step"] + 1, 0).astype(jnp.int32) if "step" in old else bad.astype(jnp.int32)
    return new, {**sums, "nonfinite": bad.astype(jnp.int32), "first_nonfinite": first}


def accumulate(acc: dict, sums: dict) -> dict:
    """add_sums, except that the first flagged step of a window is kept, not added."""
    out = add_sums(acc, sums)
    out["first_nonfinite"] = jnp.where(acc["first_nonfinite"] > 0, acc["first_nonfinite"], sums["first_nonfinite"])
    return out


def val_never_finite(streak: list, loss: float, step: int) -> bool:
    """Updates one copy's [ever finite, non-finite evaluations in a row, last evaluated step] with
    the val loss at `step`; True when the copy should fail (NEVER_FINITE_EVALS non-finite ones
    and none finite before)."""
    if math.isfinite(loss):
        streak[:] = [True, 0, step]
        return False
    streak[1:] = [streak[1] + 1, step]
    return not streak[0] and streak[1] >= NEVER_FINITE_EVALS


ADVICE = (
    "lower optimizer.lr, set optimizer.clip_norm, or check the data for extreme values, and start "
    "in a new run dir (resuming this one restores the same parameters)"
)


def never_finite_message(evals: int, step: int, skipped: int) -> str:
    """What the user reads when nan_policy=skip cannot save a run: the val loss was never finite."""
    return (
        f"the val loss was not finite at any of {evals} evaluation(s) up to step {step} "
        f"({skipped} train step(s) skipped as non-finite): the model's outputs are not finite, most often because "
        f"its parameters grew so large that every update overflows, which skipping cannot undo; {ADVICE}"
    )


def nonfinite_state_message(step: int, skipped: int) -> str:
    """What the user reads when nan_policy=skip finds a non-finite value in the state itself."""
    return (
        f"the train state (parameters or optimizer) held a non-finite value at step {step} although "
        f"{skipped} non-finite step(s) were skipped: an update overflowed; {ADVICE}"
    )


def nonfinite_message(sums: dict, start: int, end: int, loss: float) -> str:
    """What the user reads when the stop policy ends a run."""
    what = f"loss became {loss}" if loss != loss or abs(loss) == float("inf") else "gradient became non-finite"
    return (
        f"the train {what} between steps {start} and {end}, first at step {int(sums['first_nonfinite'])} "
        f"({int(sums['nonfinite'])} non-finite step(s)); lower optimizer.lr, set optimizer.clip_norm, "
        "check the data for extreme values, or set trainer.nan_policy=skip to skip such updates "
        "(the last checkpoint saved holds finite parameters)"
    )
