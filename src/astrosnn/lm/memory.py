"""The astrocyte of AM-SU as a linear-attention memory, and the registry of its write rules.

Per head the astrocyte holds a memory matrix ``H (d_h x d_h)`` (value x key) and, for the ``denominator``
readout, a key sum ``z``. A write rule says how a token writes into them and how the readout ``y_t = H_t q_t``
(and the denominator ``q_t . z_t``) is formed, in forms that agree to float precision: ``step`` (one token,
for generation) and ``sequence`` (a whole sequence, exactly in chunks, for training; on CUDA with
flash-linear-attention installed, its Triton kernel). The AM-SU option ``memory`` selects a rule by name.

``hebbian`` (the default; the paper's astrocyte)::

    H_t = lambda H_{t-1} + v_t k_t^T,   z_t = lambda z_{t-1} + k_t

  lambda per head (learnable, multi-scale init). Chunked: intra-chunk ``((Q K^T) * D) V`` with the decay mask
  ``D[i, j] = lambda^(i-j)`` plus the chunk-start state, chunk-start states by one product over chunks.
  Biology: calcium integrates co-active pre/post-synaptic signals and leaks at a fixed clearance rate.
  This is "simple GLA" / retention with ``g = log lambda``.

``gated`` (input-dependent forgetting; "simple GLA" with a data-dependent gate, Mamba-2 style)::

    H_t = alpha_t H_{t-1} + v_t k_t^T,   z_t = alpha_t z_{t-1} + k_t
    log alpha_t = log(lambda_h) * softplus(w_a . x_t + b_a + log(e - 1))

  i.e. Mamba-2's ``g_t = -exp(A_h) * Delta_t`` with ``exp(A_h) = -log lambda_h`` (the paper's decay, same
  parameter and init) and ``Delta_t = softplus(...)``, which is 1 when ``w_a . x_t + b_a = 0``: a fresh layer
  (``b_a = 0``, small ``w_a``) starts near the hebbian memory. Chunked exactly with per-token cumulative log
  decays ``b_i = sum_(j<=i in chunk) log alpha_j``: ``D[i, j] = exp(b_i - b_j)`` (j <= i), the chunk-start
  state enters as ``exp(b_i) Q S^T``, and chunk-start states by one product over chunks with
  ``exp(P_m - P_(j+1))``, ``P`` the exclusive cumsum of chunk totals (every exponent <= 0: no overflow).
  Biology: activity-dependent forgetting; the calcium clearance rate (pumps, buffering) is modulated by the
  input, so a salient input can flush the astrocyte's trace or hold it.

``delta`` (error-correcting write; DeltaNet, Yang et al. 2024)::

    k_t <- k_t / |k_t|,  q_t <- q_t / |q_t|      (L2 per head, after phi; fla's use_qk_l2norm_in_kernel)
    beta_t = sigmoid(w_b . x_t + b_b)           (per head and token, in (0, 1))
    H_t = H_{t-1} + beta_t (v_t - H_{t-1} k_t) k_t^T,   y_t = H_t q_t

  No decay (lambda is not used: the layer has no ``lambda_logit``). Chunked exactly with the WY / UT
  transform: per chunk (rows = tokens, ``S = H^T`` key x value) solve the unit lower-triangular system
  ``(I + tril(diag(beta) (K K^T), -1)) [U | W] = [diag(beta) V | diag(beta) K]`` (``solve_triangular``,
  batched over all chunks), then per chunk in order: ``Delta = U - W S``, ``Y = Q S + tril(Q K^T) Delta``,
  ``S <- S + K^T Delta``. Biology: the astrocyte compares what it would release for a key (its prediction
  ``H k``) with the value the synapse now carries and stores only the error, scaled by a calcium-dependent
  release probability ``beta_t``: gliotransmitter release that corrects synaptic efficacy rather than adding
  to it, so a re-used key overwrites its old value instead of blurring it.

``gated-delta`` (Gated DeltaNet, Yang et al. 2025): both, with the ``gated`` rule's alpha_t::

    H_t = alpha_t H_{t-1} + beta_t (v_t - alpha_t H_{t-1} k_t) k_t^T

  Chunked as ``delta`` with the decay mask ``Gamma[i, j] = exp(b_i - b_j)`` in ``K K^T`` and ``Q K^T``,
  ``W`` from ``diag(beta exp(b)) K``, ``Y = diag(exp(b)) Q S + ...``, ``S <- exp(b_c) S + (exp(b_c - b) K)^T
  Delta``. Biology: error-correcting release plus input-gated clearance.

The ``denominator`` readout needs positive keys (``q . z > 0``): it is defined for ``hebbian`` and ``gated``
only; ``delta`` and ``gated-delta`` (L2-normalised keys, signed errors) refuse it with a config error.

Gate inputs: a rule declares ``gate_count`` scalars per head and token; the AM-SU module owns one fused
``Linear(d, heads * gate_count)`` on the layer input ``x_t`` and passes the raw pre-activations
``gates (B, h[, T], gate_count)``; the rule applies its own nonlinearity (``gated``: Delta_t; ``delta``:
beta_t; ``gated-delta``: ``[beta, Delta]`` in that order).

GPU path: :func:`fla_sequence` maps a rule onto flash-linear-attention (``chunk_simple_gla``,
``chunk_delta_rule``, ``chunk_gated_delta_rule``; layout ``[B, T, H, K]``, state ``[B, H, K, V]`` = ``H^T``,
``scale=1``, ``g = log alpha``); it is used when the tensors are on CUDA in half/bfloat16/float32 and ``fla``
imports (``gated`` with the ``denominator`` readout, and ``hebbian`` always, keep their torch chunked forms;
``memory.use_fla = False`` forces the torch forms). The same mapping, called with fla's plain-torch references,
is checked against ``step`` in the tests (the kernels themselves need a GPU and were not run here).

A new rule is one class implementing :class:`MemoryRule` plus one :func:`register_memory` call.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from astrosnn.errors import AstrosnnError

__all__ = [
    "DeltaMemory",
    "GatedDeltaMemory",
    "GatedMemory",
    "HebbianMemory",
    "MemoryRule",
    "delta_chunked",
    "fla_sequence",
    "gla_chunked",
    "hebbian_chunked",
    "memory_names",
    "memory_rule",
    "register_memory",
]

MemoryOut = tuple[Tensor, Tensor | None, Tensor, Tensor | None]
_L2_EPS = 1e-6
SOFTPLUS_ONE = math.log(math.e - 1)  # softplus(SOFTPLUS_ONE) = 1


class MemoryRule(Protocol):
    """A write rule of the astrocyte memory.

    Shapes: one token ``q, k, v (B, h, d_h)``; a sequence ``q, k, v (B, h, T, d_h)``; ``memory (B, h, d_h, d_h)``
    before the token(s); ``key_sum (B, h, d_h)`` or None when no denominator is needed; ``log_lambda (h,)``
    the log of the per-head decay (None when the rule does not use it); ``gates`` the raw per-head gate
    pre-activations ``(B, h, gate_count)`` / ``(B, h, T, gate_count)`` (None when ``gate_count == 0``). Both
    return ``(y, denominator or None, memory, key_sum)`` with ``y`` shaped like ``q`` and the denominator like
    ``q`` without its last axis.

    Attributes: ``gate_count`` scalars per head and token the rule reads from the AM-SU's gate projection;
    ``uses_decay`` whether the layer needs the per-head decay lambda; ``supports_denominator`` whether the
    ``denominator`` readout is defined for it.
    """

    gate_count: int
    uses_decay: bool
    supports_denominator: bool

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor | None, gates: Tensor | None = None) -> MemoryOut: ...  # fmt: skip

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor | None, chunk_size: int,
                 gates: Tensor | None = None) -> MemoryOut: ...  # fmt: skip


def _decayed_write_step(q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                        decay: Tensor) -> MemoryOut:  # fmt: skip
    """One token of ``H = decay H + v k^T`` (and ``z = decay z + k``); ``decay`` broadcasts as ``(B | 1, h, 1)``."""
    memory = decay.unsqueeze(-1) * memory + v.unsqueeze(-1) * k.unsqueeze(-2)
    y = (memory @ q.unsqueeze(-1)).squeeze(-1)
    den = None
    if key_sum is not None:
        key_sum = decay * key_sum + k
        den = (q * key_sum).sum(-1)
    return y, den, memory, key_sum


class HebbianMemory:
    """``H_t = lambda H_{t-1} + v_t k_t^T``: the decaying outer-product write of linear attention."""

    gate_count = 0
    uses_decay = True
    supports_denominator = True

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        return _decayed_write_step(q, k, v, memory, key_sum, log_lambda.exp().view(1, -1, 1))

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor, chunk_size: int, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        return hebbian_chunked(q, k, v, memory, key_sum, log_lambda, chunk_size)


def _log_alpha(log_lambda: Tensor, gate: Tensor) -> Tensor:
    """``log alpha = log(lambda_h) * softplus(gate + log(e - 1))``; gate ``(B, h[, T])``."""
    shape = (1, -1) + (1,) * (gate.ndim - 2)
    return log_lambda.view(shape) * F.softplus(gate + SOFTPLUS_ONE)


def _l2(x: Tensor) -> Tensor:
    """L2-normalise over the last axis (fla's ``l2norm``: ``x / sqrt(sum x^2 + eps)``)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + _L2_EPS)


class GatedMemory:
    """``H_t = alpha_t H_{t-1} + v_t k_t^T`` with an input-dependent per-head decay ``alpha_t``."""

    gate_count = 1
    uses_decay = True
    supports_denominator = True

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        alpha = _log_alpha(log_lambda, gates[..., 0]).exp().unsqueeze(-1)  # (B, h, 1)
        return _decayed_write_step(q, k, v, memory, key_sum, alpha)

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor, chunk_size: int, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        g = _log_alpha(log_lambda, gates[..., 0])
        if _use_fla(q) and key_sum is None:
            y, memory = fla_sequence("gated", q, k, v, memory, g=g)
            return y, None, memory, None
        return gla_chunked(q, k, v, g, memory, key_sum, chunk_size)


class DeltaMemory:
    """``H_t = H_{t-1} + beta_t (v_t - H_{t-1} k_t) k_t^T`` (DeltaNet), keys and queries L2-normalised."""

    gate_count = 1
    uses_decay = False
    supports_denominator = False

    def _gates(self, log_lambda: Tensor | None, gates: Tensor) -> tuple[Tensor, Tensor | None]:
        return torch.sigmoid(gates[..., 0]), None

    def step(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
             log_lambda: Tensor | None, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        beta, g = self._gates(log_lambda, gates)
        q, k = _l2(q), _l2(k)
        if g is not None:
            memory = g.exp()[..., None, None] * memory
        error = v - (memory @ k.unsqueeze(-1)).squeeze(-1)
        memory = memory + (beta.unsqueeze(-1) * error).unsqueeze(-1) * k.unsqueeze(-2)
        y = (memory @ q.unsqueeze(-1)).squeeze(-1)
        return y, None, memory, key_sum

    def sequence(self, q: Tensor, k: Tensor, v: Tensor, memory: Tensor, key_sum: Tensor | None,
                 log_lambda: Tensor | None, chunk_size: int, gates: Tensor | None = None) -> MemoryOut:  # fmt: skip
        beta, g = self._gates(log_lambda, gates)
        q, k = _l2(q), _l2(k)
        if _use_fla(q):
            y, memory = fla_sequence("delta" if g is None else "gated-delta", q, k, v, memory, beta=beta, g=g)
        else:
            y, memory = delta_chunked(q, k, v, beta, g, memory, chunk_size)
        return y, None, memory, key_sum


class GatedDeltaMemory(DeltaMemory):
    """``H_t = alpha_t H_{t-1} + beta_t (v_t - alpha_t H_{t-1} k_t) k_t^T`` (Gated DeltaNet)."""

    gate_count = 2
    uses_decay = True

    def _gates(self, log_lambda: Tensor | None, gates: Tensor) -> tuple[Tensor, Tensor | None]:
        return torch.sigmoid(gates[..., 0]), _log_alpha(log_lambda, gates[..., 1])


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


def _chunks(c: int, T: int, *tensors: Tensor) -> list[Tensor]:
    """Zero-pad the time axis (2) to a multiple of ``c`` and split it into ``(n, c)``.

    Padding is exact for every rule here: a padded token has ``k = v = 0``, ``log alpha = 0`` and
    ``beta = 0``, so it leaves the state unchanged; its outputs are dropped.
    """
    pad = (-T) % c
    out = []
    for t in tensors:
        if pad:
            t = F.pad(t, (0, 0, 0, pad) if t.ndim == 4 else (0, pad))
        out.append(t.reshape(*t.shape[:2], -1, c, *t.shape[3:]))
    return out


def _masked_exp(diff: Tensor, keep: Tensor) -> Tensor:
    """``exp(diff)`` where ``keep``, else 0 (no overflow, no NaN gradient from the dropped entries)."""
    return torch.where(keep, diff, torch.full_like(diff, -math.inf)).exp()


def gla_chunked(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, H: Tensor, z: Tensor | None, chunk_size: int
) -> MemoryOut:
    """``H_t = alpha_t H_{t-1} + v_t k_t^T`` over a sequence, exactly, in chunks (``g = log alpha (B, h, T)``).

    Args and returns as :func:`hebbian_chunked` with a per-token log decay instead of ``log_lambda``.
    """
    B, h, T, dh = q.shape
    if T == 0:
        return q.new_zeros(q.shape), (None if z is None else q.new_zeros(q.shape[:3])), H, z
    c = min(chunk_size, T)
    q, k, v, g = _chunks(c, T, q, k, v, g)  # (B, h, n, c, dh), g (B, h, n, c)
    n = q.shape[2]
    b = g.cumsum(-1)  # inclusive log decay from the chunk start
    tot = b[..., -1]  # (B, h, n)
    tril = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    scores = (q @ k.transpose(-1, -2)) * _masked_exp(b.unsqueeze(-1) - b.unsqueeze(-2), tril)
    k_out = k * (tot.unsqueeze(-1) - b).exp().unsqueeze(-1)  # decayed to the chunk end
    dH = v.transpose(-1, -2) @ k_out  # (B, h, n, dh, dh)
    P = tot.cumsum(-1) - tot  # log decay from the sequence start to each chunk start
    before = torch.ones(n, n, dtype=torch.bool, device=q.device).tril(-1)  # j < m
    across = _masked_exp(P.unsqueeze(-1) - (P + tot).unsqueeze(-2), before)  # (B, h, n, n)
    from_start = P.exp()  # (B, h, n)
    starts = (across @ dH.reshape(B, h, n, dh * dh)).view(B, h, n, dh, dh)
    starts = starts + from_start[..., None, None] * H.unsqueeze(2)
    decay_in = b.exp().unsqueeze(-1)  # (B, h, n, c, 1)
    y = scores @ v + decay_in * (q @ starts.transpose(-1, -2))
    H_end = tot[:, :, -1, None, None].exp() * starts[:, :, -1] + dH[:, :, -1]
    y = y.reshape(B, h, n * c, dh)[:, :, :T]
    if z is None:
        return y, None, H_end, None
    dz = k_out.sum(3)  # (B, h, n, dh)
    z_starts = across @ dz + from_start.unsqueeze(-1) * z.unsqueeze(2)
    den = scores.sum(-1) + decay_in.squeeze(-1) * (q @ z_starts.unsqueeze(-1)).squeeze(-1)
    z_end = tot[:, :, -1, None].exp() * z_starts[:, :, -1] + dz[:, :, -1]
    return y, den.reshape(B, h, n * c)[:, :, :T], H_end, z_end


def delta_chunked(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, H: Tensor, chunk_size: int
) -> tuple[Tensor, Tensor]:
    """The (gated) delta rule over a sequence, exactly, with the WY / UT transform per chunk.

    ``H_t = alpha_t H_{t-1} + beta_t (v_t - alpha_t H_{t-1} k_t) k_t^T`` (``g = log alpha (B, h, T)``, None =
    no decay: DeltaNet), ``y_t = H_t q_t``. q, k, v ``(B, h, T, d_h)`` (normalised by the caller), beta
    ``(B, h, T)``, H ``(B, h, d_h, d_h)`` value x key. Returns ``y (B, h, T, d_h)`` and the final ``H``.
    """
    B, h, T, dh = q.shape
    if T == 0:
        return q.new_zeros(q.shape), H
    c = min(chunk_size, T)
    if g is None:
        g = beta.new_zeros(beta.shape)
    q, k, v, beta, g = _chunks(c, T, q, k, v, beta, g)  # (B, h, n, c, .)
    n = q.shape[2]
    b = g.cumsum(-1)
    tot = b[..., -1]
    ones = torch.ones(c, c, dtype=torch.bool, device=q.device)
    gamma = _masked_exp(b.unsqueeze(-1) - b.unsqueeze(-2), ones.tril())  # (B, h, n, c, c)
    # (I + A) [U | W] = [diag(beta) V | diag(beta exp(b)) K], A = strict tril(diag(beta) (K K^T * Gamma))
    A = (beta.unsqueeze(-1) * (k @ k.transpose(-1, -2)) * gamma).masked_fill(~ones.tril(-1), 0.0)
    rhs = torch.cat([beta.unsqueeze(-1) * v, (beta * b.exp()).unsqueeze(-1) * k], dim=-1)
    U, W = torch.linalg.solve_triangular(A, rhs, upper=False, unitriangular=True).split(dh, dim=-1)
    scores = (q @ k.transpose(-1, -2)) * gamma  # inclusive of the diagonal
    q_in = q * b.exp().unsqueeze(-1)
    k_out = k * (tot.unsqueeze(-1) - b).exp().unsqueeze(-1)
    S = H.transpose(-1, -2)  # key x value
    ys = []
    for m in range(n):
        delta = U[:, :, m] - W[:, :, m] @ S  # (B, h, c, dh): the written errors
        ys.append(q_in[:, :, m] @ S + scores[:, :, m] @ delta)
        S = tot[:, :, m, None, None].exp() * S + k_out[:, :, m].transpose(-1, -2) @ delta
    y = torch.stack(ys, dim=2).reshape(B, h, n * c, dh)[:, :, :T]
    return y, S.transpose(-1, -2)


# --- flash-linear-attention (the CUDA path, and its plain-torch references in the tests) ---

_FLA_KERNELS = {
    "gated": ("fla.ops.simple_gla", "chunk_simple_gla"),
    "delta": ("fla.ops.delta_rule", "chunk_delta_rule"),
    "gated-delta": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule"),
}
use_fla = True  # set False to force the plain-torch chunked forms on CUDA


def _fla_available() -> bool:
    try:
        importlib.import_module("fla")
    except Exception:  # noqa: BLE001  (any import failure: no Triton, no GPU, broken install)
        return False
    return True


def _use_fla(x: Tensor) -> bool:
    return (
        use_fla and x.is_cuda and x.dtype in (torch.float16, torch.bfloat16, torch.float32) and _fla_available()
    )


def fla_sequence(
    kind: str,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    H: Tensor,
    *,
    g: Tensor | None = None,
    beta: Tensor | None = None,
    kernel: Callable[..., tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """A memory rule through flash-linear-attention: ``(y (B, h, T, d_h), final H (B, h, d_h, d_h))``.

    ``kind`` is ``gated`` | ``delta`` | ``gated-delta``; q, k, v ``(B, h, T, d_h)`` as the rule feeds its
    chunked form (already L2-normalised for the delta rules), ``g = log alpha (B, h, T)``, ``beta (B, h, T)``,
    ``H`` value x key. fla wants ``[B, T, H, K]`` layouts, a ``[B, H, K, V]`` state (``H^T``), ``scale=1``
    (astrosnn reads ``H q`` unscaled), log decays ``g`` and ``beta`` as ``[B, T, H]``. ``kernel`` replaces the
    CUDA kernel by any function with the same keyword arguments (the tests pass fla's naive references).
    """
    if kernel is None:
        module, name = _FLA_KERNELS[kind]
        kernel = getattr(importlib.import_module(module), name)

    def bthk(t: Tensor) -> Tensor:
        return t.transpose(1, 2).contiguous()

    kwargs = dict(q=bthk(q), k=bthk(k), v=bthk(v), scale=1.0,
                  initial_state=H.transpose(-1, -2).contiguous(), output_final_state=True)  # fmt: skip
    if g is not None:
        kwargs["g"] = bthk(g)
    if beta is not None:
        kwargs["beta"] = bthk(beta)
    o, state = kernel(**kwargs)
    return o.transpose(1, 2).to(q.dtype), state.transpose(-1, -2).to(H.dtype)


register_memory("hebbian", HebbianMemory())
register_memory("delta", DeltaMemory())
register_memory("gated", GatedMemory())
register_memory("gated-delta", GatedDeltaMemory())
