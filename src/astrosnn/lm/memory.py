"""The astrocyte of AM-SU as a linear-attention memory, and the registry of its write rules.

Per head the astrocyte holds a memory matrix ``H (d_h x d_h)`` (value x key) and, for the ``denominator``
readout, a key sum ``z``. A write rule says how a token writes into them and how the readout ``y_t = H_t q_t``
(and the denominator ``q_t . z_t``) is formed, in two forms that agree to float precision: ``step`` (one
token) and ``sequence`` (a whole sequence, for training). ``hebbian`` (the default) is the spec's rule::

    H_t = lambda H_{t-1} + v_t k_t^T,   z_t = lambda z_{t-1} + k_t

A new rule is one class implementing :class:`MemoryRule` plus one :func:`register_memory` call; the
AM-SU option ``memory`` selects it by name.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from astrosnn.errors import AstrosnnError

__all__ = ["HebbianMemory", "MemoryRule", "hebbian_chunked", "memory_names", "memory_rule", "register_memory"]

MemoryOut = tuple[Tensor, Tensor | None, Tensor, Tensor | None]


class MemoryRule(Protocol):
    """A write rule of the astrocyte memory.

    Shapes: one token ``q, k, v (B, h, d_h)``; a sequence ``q, k, v (B, h, T, d_h)``; ``memory (B, h, d_h, d_h)``
    before the token(s); ``key_sum (B, h, d_h)`` or None when no denominator is needed; ``log_lambda (h,)``
    the log of the per-head decay. Both return ``(y, denominator or None, memory, key_sum)`` with ``y`` shaped
    like ``q`` and the denominator like ``q`` without its last axis.
    """

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor) -> MemoryOut: ...  # fmt: skip

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor, chunk_size: int) -> MemoryOut: ...  # fmt: skip


class HebbianMemory:
    """``H_t = lambda H_{t-1} + v_t k_t^T``: the decaying outer-product write of linear attention."""

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor) -> MemoryOut:  # fmt: skip
        h = log_lambda.shape[0]
        lam = log_lambda.exp().view(1, h, 1)
        memory = lam.unsqueeze(-1) * memory + v.unsqueeze(-1) * k.unsqueeze(-2)
        y = (memory @ q.unsqueeze(-1)).squeeze(-1)
        den = None
        if key_sum is not None:
            key_sum = lam * key_sum + k
            den = (q * key_sum).sum(-1)
        return y, den, memory, key_sum

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor, chunk_size: int) -> MemoryOut:  # fmt: skip
        return hebbian_chunked(q, k, v, memory, key_sum, log_lambda, chunk_size)


_RULES: dict[str, MemoryRule] = {}


def register_memory(name: str, rule: MemoryRule) -> None:
    """Make `rule` selectable as the AM-SU option ``memory=name``."""
    _RULES[name] = rule


def memory_names() -> tuple[str, ...]:
    return tuple(_RULES)


def memory_rule(name: str) -> MemoryRule:
    rule = _RULES.get(name)
    if rule is None:
        raise AstrosnnError(f"unknown AM-SU memory {name!r}; choose one of {', '.join(_RULES)}")
    return rule


def hebbian_chunked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    H: Tensor,
    z: Tensor | None,
    log_lambda: Tensor,
    chunk_size: int,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """The Hebbian memory over a sequence, exactly, in chunks.

    Args:
        q, k, v: ``(B, h, T, d_h)``; H: ``(B, h, d_h, d_h)`` state before the sequence (value x key);
        z: ``(B, h, d_h)`` key sum before the sequence, or None when no denominator is needed;
        log_lambda: ``(h,)``; chunk_size: any length >= 1.

    Returns:
        ``y (B, h, T, d_h)`` with ``y_t = H_t q_t``; the denominators ``q_t . z_t (B, h, T)`` (or None);
        the final ``H`` and ``z``.

    Within a chunk: ``y = ((Q K^T) * D) V + lambda^(i+1) Q H_prev^T`` with ``D[i, j] = lambda^(i-j)`` for
    ``j <= i``; between chunks ``H = lambda^c H_prev + V^T (lambda^(c-1-j) K)``.
    """
    T = q.shape[2]
    c = min(chunk_size, T) if T else 1
    full = (T // c) * c
    sizes = [n for n in (full, T - full) if n]
    ys, dens = [], []
    for qs, ks, vs in zip(*(t.split(sizes, dim=2) for t in (q, k, v))):
        size = min(c, qs.shape[2])
        y, den, H, z = _chunk_block(qs, ks, vs, H, z, log_lambda, size)
        ys.append(y)
        dens.append(den)
    if not ys:
        return q.new_zeros(q.shape), (None if z is None else q.new_zeros(q.shape[:3])), H, z
    y = torch.cat(ys, dim=2) if len(ys) > 1 else ys[0]
    if z is None:
        return y, None, H, None
    return y, (torch.cat(dens, dim=2) if len(dens) > 1 else dens[0]), H, z


def _chunk_block(
    q: Tensor, k: Tensor, v: Tensor, H: Tensor, z: Tensor | None, log_lambda: Tensor, c: int
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """All ``n = T / c`` chunks of length ``c`` at once (``T`` a multiple of ``c``); see above.

    Chunk-start states: ``S_0 = H``, ``S_m = lambda^c S_(m-1) + dH_(m-1)``, i.e.
    ``S_m = lambda^(c m) H + sum_(j<m) lambda^(c (m-1-j)) dH_j``: one small product over chunks.
    """
    B, h, T, dh = q.shape
    n = T // c
    q, k, v = (t.reshape(B, h, n, c, dh) for t in (q, k, v))
    ll = log_lambda.view(1, h, 1, 1, 1)
    idx = torch.arange(c, device=q.device, dtype=q.dtype)
    diff = idx.view(-1, 1) - idx.view(1, -1)  # (c, c)
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    decay = torch.where(diff >= 0, torch.exp(diff.clamp(min=0) * ll), zero)  # (1, h, 1, c, c)
    scores = (q @ k.transpose(-1, -2)) * decay  # (B, h, n, c, c)
    decay_in = torch.exp((idx + 1).view(-1, 1) * ll)  # (1, h, 1, c, 1)
    decay_out = torch.exp((c - 1 - idx).view(-1, 1) * ll)  # (1, h, 1, c, 1)
    k_out = decay_out * k
    dH = v.transpose(-1, -2) @ k_out  # (B, h, n, dh, dh): each chunk's own write
    m = torch.arange(n, device=q.device, dtype=q.dtype)
    gap = m.view(-1, 1) - m.view(1, -1) - 1  # (n, n)
    llh = log_lambda.view(h, 1, 1)
    across = torch.where(gap >= 0, torch.exp(c * gap.clamp(min=0) * llh), zero)  # (h, n, n)
    from_start = torch.exp(c * m.view(1, -1) * log_lambda.view(h, 1))  # (h, n)
    starts = (across @ dH.reshape(B, h, n, dh * dh)).view(B, h, n, dh, dh)
    starts = starts + from_start.view(1, h, n, 1, 1) * H.unsqueeze(2)
    y = scores @ v + decay_in * (q @ starts.transpose(-1, -2))
    last = torch.exp(c * log_lambda).view(1, h, 1, 1)
    H = last * starts[:, :, -1] + dH[:, :, -1]
    if z is None:
        return y.reshape(B, h, T, dh), None, H, None
    dz = k_out.sum(3)  # (B, h, n, dh)
    z_starts = across @ dz + from_start.view(1, h, n, 1) * z.unsqueeze(2)
    den = scores.sum(-1) + decay_in.squeeze(-1) * (q @ z_starts.unsqueeze(-1)).squeeze(-1)
    z = last.squeeze(-1) * z_starts[:, :, -1] + dz[:, :, -1]
    return y.reshape(B, h, T, dh), den.reshape(B, h, T), H, z


register_memory("hebbian", HebbianMemory())
