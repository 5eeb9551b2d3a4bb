"""Recurrent state helpers: detach for truncated BPTT, flatten/unflatten for checkpoints.

A model state is any nesting of tuples, lists, NamedTuples and dicts whose leaves are tensors (or None).
"""

from __future__ import annotations

from typing import Any

import torch

from astrosnn.errors import AstrosnnError


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def map_state(fn, state: Any) -> Any:
    """Apply `fn` to every tensor leaf, keeping the nesting (NamedTuple types included)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if _is_namedtuple(state):
        return type(state)(*(map_state(fn, s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    if isinstance(state, (int, float, bool, str)):
        return state
    raise AstrosnnError(f"unsupported state leaf of type {type(state).__name__}")


def detach_state(state: Any) -> Any:
    """Cut the graph at a batch boundary (truncated BPTT); values are kept."""
    return map_state(torch.Tensor.detach, state)


def flatten_state(state: Any) -> list[torch.Tensor | None]:
    """Leaves in a fixed depth-first order (None kept as a placeholder)."""
    leaves: list[torch.Tensor | None] = []

    def visit(s: Any) -> None:
        if s is None or isinstance(s, torch.Tensor):
            leaves.append(s)
        elif isinstance(s, (tuple, list)):
            for item in s:
                visit(item)
        elif isinstance(s, dict):
            for k in sorted(s):
                visit(s[k])
        else:
            leaves.append(None)

    visit(state)
    return leaves


def unflatten_like(template: Any, leaves: list[torch.Tensor | None]) -> Any:
    """Rebuild a state with the nesting of `template` from leaves produced by `flatten_state`."""
    it = iter(leaves)
    count = len(flatten_state(template))
    if count != len(leaves):
        raise AstrosnnError(f"saved state has {len(leaves)} tensors, the model's state has {count}")

    def build(t: Any) -> Any:
        if t is None or isinstance(t, torch.Tensor):
            leaf = next(it)
            if isinstance(t, torch.Tensor) and (leaf is None or leaf.shape != t.shape):
                shape = None if leaf is None else tuple(leaf.shape)
                raise AstrosnnError(f"saved state tensor has shape {shape}, the model expects {tuple(t.shape)}")
            return leaf
        if _is_namedtuple(t):
            return type(t)(*(build(s) for s in t))
        if isinstance(t, (tuple, list)):
            return type(t)(build(s) for s in t)
        if isinstance(t, dict):
            return {k: build(t[k]) for k in sorted(t)}
        next(it)
        return t

    return build(template)
