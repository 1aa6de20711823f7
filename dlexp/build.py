"""Turns config nodes into the parts of a run: the model (and, via data/ and optim,
the data set and the optimizer). Every `_target_` is checked against its signature
first, so a misspelt key is named before anything is built."""

from __future__ import annotations

from typing import Any

from flax import nnx

from dlexp.config import call_target, parameters, target_kwargs
from dlexp.errors import ConfigError


def build_model(
    node: Any, *, in_shape: tuple[int, ...], num_outputs: int, seed: int, vocab_size: int | None = None
) -> nnx.Module:
    """The model of `node`; `vocab_size` (a text column's token ids) goes to a model that takes it."""
    given: dict[str, Any] = {"in_shape": tuple(in_shape), "num_outputs": num_outputs, "rngs": nnx.Rngs(seed)}
    if vocab_size is not None:
        fn, _ = target_kwargs(node, "model")
        if "vocab_size" not in parameters(fn):
            raise ConfigError(
                f"model._target_={node['_target_']!r} does not read token ids (it takes no vocab_size); "
                "a text column (dataset.text) needs model=lstm, gru or transformer"
            )
        given["vocab_size"] = int(vocab_size)
    try:
        model = call_target(node, "model", given)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {e}") from None
    if not isinstance(model, nnx.Module):
        raise ConfigError(f"model._target_ built a {type(model).__name__}; it must be a flax.nnx.Module")
    return model


def model_summary(model: nnx.Module) -> str:
    """Layers with their parameter shapes and counts, for the console and TensorBoard."""
    lines, total = [], 0
    for path, p in nnx.iter_graph(model):
        if isinstance(p, nnx.Param):
            value = p[...]
            n = int(value.size)
            total += n
            lines.append(f"{'.'.join(map(str, path)):40s} {str(tuple(value.shape)):>18s} {n:>10,d}")
    lines.append(f"{'total':40s} {'':>18s} {total:>10,d}")
    return "\n".join(lines)
