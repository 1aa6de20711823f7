"""Which jobs of a sweep can train as one program: those equal in everything but vectorizable values.

Two jobs share a group when their composed configs agree on every key that is not
vectorizable (dlexp/copies.py), on which vectorizable terms are on (a clip norm set or null, a
dropout rate zero or not), and on the data split (`data_seed`, else `seed`: jobs of different
seeds split their data differently unless `data_seed` is fixed, and a packed job must train
on the split its own run would).
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlexp.copies import is_on, is_switch, is_vectorizable


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: leaf value}."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def task_config(cfg: DictConfig) -> dict[str, Any]:
    """The job's config without Hydra's node, resolved (what its run would see)."""
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(container), resolve=True)  # type: ignore[return-value]


def packable(values: dict[str, Any]) -> bool:
    """A job that is itself several models, cross-validated, asks for inspection that acts on single
    runs (histograms, embeddings, a profile) or is asked to run alone trains alone."""
    return bool(
        values.get("sweep.pack") is not False
        and values.get("trainer.seeds") is None
        and values.get("trainer.copies") is None
        and not values.get("trainer.cv.folds")
        and values.get("trainer.parallel") != "pmap"
        and not values.get("logger.histograms_every")
        and not values.get("logger.embeddings")
        and not values.get("logger.profile_steps")
    )


def group_key(values: dict[str, Any]) -> str:
    """What every job of a group shares (a JSON string); `values`: flat(task_config(job))."""
    key = {k: (is_on(v) if is_switch(k) else None) if is_vectorizable(k) else v for k, v in values.items()}
    key["data split seed"] = values.get("data_seed") if values.get("data_seed") is not None else values.get("seed")
    return json.dumps(key, sort_keys=True, default=str)


def own_values(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each member's values of the vectorizable keys that differ within the group."""
    keys = [k for k in members[0] if is_vectorizable(k) and len({json.dumps(m.get(k)) for m in members}) > 1]
    return [{k: m.get(k) for k in keys} for m in members]
