"""Fused single-token decoding for AstroSNN and LIF-SNN: the whole model's ``step`` in one numba call.

:meth:`AstroSNNLM.step` is the reference: a readable torch form that costs ~30 small torch ops per layer, each
a few microseconds of dispatch, which at batch 1 and width 96-512 is most of a token's time. Here every
parameter is packed once into contiguous arrays (per layer: one input matrix for current | value | gates,
one for key | query, both transposed so a product is one BLAS call; the spike-driven outputs ``W_o s`` and
``W_2 s`` stored as rows so that they are accumulated only over the neurons that spiked), the state lives in
preallocated buffers updated in place, and one ``@njit`` function runs embedding -> all blocks -> final norm
-> head for a token. No Python runs per layer or per op.

Covered: ``neuron="lif"`` models (``astrosnn``, ``lif-snn``) with every memory rule (hebbian, gated, delta,
gated-delta), both readout norms, every phi / sigma, any shift size, the astrocyte clock, astrocyte on or off,
every reset mode, float32 and float64 on the CPU. Anything else (``linear-attention``, CUDA tensors, other model kinds) uses
the generic ``model.step`` through :class:`StepDecoder`; :func:`make_decoder` picks, and says why in
``decoder.fallback_reason``.

The two forms agree to float rounding (tests: 50 tokens, logits within 1e-5 in float32, 1e-10 in float64).
Float32 sums run in another order than torch's (BLAS blocking, the spike accumulation), so a membrane that
lands within ~1e-7 of the threshold could in principle spike in one form and not the other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numba import njit
from torch import Tensor, nn

from astrosnn.errors import AstrosnnError

__all__ = ["FusedDecoder", "StepDecoder", "fused_unsupported_reason", "make_decoder"]

_PHI = {"elu+1": 0, "relu": 1, "softplus": 2, "sigmoid": 3, "identity": 4}
_SIGMA = {"sigmoid": 0, "identity": 1, "tanh": 2, "relu": 3}
_MEMORY = {"hebbian": 0, "gated": 1, "delta": 2, "gated-delta": 3}
_SOFTPLUS_ONE = math.log(math.e - 1)


# ---------------------------------------------------------------------------------------------- kernels


@njit(nogil=True, cache=True, inline="always")
def _softplus(x):  # noqa: ANN001, ANN202  (torch's threshold 20)
    return x if x > 20.0 else np.log1p(np.exp(x))


@njit(nogil=True, cache=True, inline="always")
def _sigmoid(x):  # noqa: ANN001, ANN202
    return 1.0 / (1.0 + np.exp(-x))


@njit(nogil=True, cache=True)
def _layer_norm(x, w, b, out, eps):  # noqa: ANN001, ANN202
    """``out[b] = LayerNorm(x[b])`` for rows of ``x (B, d)``."""
    B, d = x.shape
    for r in range(B):
        mean = x[r].sum() / d
        var = 0.0
        for i in range(d):
            t = x[r, i] - mean
            var += t * t
        inv = 1.0 / np.sqrt(var / d + eps)
        for i in range(d):
            out[r, i] = (x[r, i] - mean) * inv * w[i] + b[i]


@njit(nogil=True, cache=True)
def _phi(x, code):  # noqa: ANN001, ANN202
    """In place on a 1-D array."""
    if code == 0:  # elu + 1
        for i in range(x.shape[0]):
            x[i] = x[i] + 1.0 if x[i] > 0 else np.expm1(x[i]) + 1.0
    elif code == 1:
        for i in range(x.shape[0]):
            x[i] = max(x[i], 0.0)
    elif code == 2:
        for i in range(x.shape[0]):
            x[i] = _softplus(x[i])
    elif code == 3:
        for i in range(x.shape[0]):
            x[i] = _sigmoid(x[i])


@njit(nogil=True, cache=True)
def _spike_accumulate(x, s, rows, bias, tmp):  # noqa: ANN001, ANN202
    """``x += bias + rows^T s`` for a spike vector ``s`` (0/1): the rows of active inputs are added (ACs)."""
    tmp[:] = bias
    for i in range(s.shape[0]):
        if s[i] != 0:
            tmp += rows[i]
    x += tmp


@njit(nogil=True, cache=True)
def _fused_step(token, embed, head_t, head_b, lnf_w, lnf_b,
                ln1_w, ln1_b, w_in, b_in, w_kq, shift_w, log_lambda, gain, beta_a, theta_a,
                w_out, b_out, ln2_w, ln2_b, w1, b1, beta_m, theta_m, w2, b2,
                u_a, s_a, memory, key_sum, shift, u_m, s_m,
                x, a, kq, xs, fb, tmp, logits, clock, clock_rate, w_ckq,
                astro, sigma, phi, norm_den, rule, reset_on, heads, taps, eps_ln):  # fmt: skip
    """One token for every row of the batch; state arrays are updated in place, logits written."""
    B, d = x.shape
    L = ln1_w.shape[0]
    dh = d // heads
    n_clock = clock.shape[2]
    gate_count = (w_in.shape[2] - 2 * d - 2 * n_clock) // heads if astro else 0
    for r in range(B):
        x[r] = embed[token[r]]
    for layer in range(L):
        _layer_norm(x, ln1_w[layer], ln1_b[layer], a, eps_ln)
        pin = np.dot(a, w_in[layer]) + b_in[layer]  # (B, d [+ d + gates]): current | value | gates
        if astro:
            for r in range(B):  # token shift: x~ = w_0 a_t + sum_j w_j a_(t-j); state oldest first
                for i in range(d):
                    acc = a[r, i] * shift_w[layer, i, 0]
                    for j in range(1, taps):
                        acc += shift[layer, r, taps - 1 - j, i] * shift_w[layer, i, j]
                    xs[r, i] = acc
                for j in range(taps - 2):
                    shift[layer, r, j] = shift[layer, r, j + 1]
                if taps > 1:
                    shift[layer, r, taps - 2] = a[r]
            kq[:] = np.dot(xs, w_kq[layer])
            if n_clock:  # the astrocyte clock: c = exp(-A dt) c + dt u, then k|q += W_ck|cq c
                base = w_in.shape[2] - 2 * n_clock
                for r in range(B):
                    for c in range(n_clock):
                        step = _softplus(pin[r, base + c])
                        clock[layer, r, c] = (np.exp(-clock_rate[layer, c] * step) * clock[layer, r, c]
                                              + step * pin[r, base + n_clock + c])  # fmt: skip
                kq += np.dot(clock[layer], w_ckq[layer])
            for r in range(B):
                _phi(kq[r], phi)
                for hh in range(heads):
                    o = hh * dh
                    k = kq[r, o : o + dh]
                    q = kq[r, d + o : d + o + dh]
                    v = pin[r, d + o : d + o + dh]
                    H = memory[layer, r, hh]
                    g0 = pin[r, 2 * d + hh * gate_count] if gate_count else 0.0
                    y = fb[r, o : o + dh]
                    if rule == 0 or rule == 1:  # hebbian / gated
                        if rule == 0:
                            decay = np.exp(log_lambda[layer, hh])
                        else:
                            decay = np.exp(log_lambda[layer, hh] * _softplus(g0 + 0.5413248546129181))
                        for i in range(dh):
                            acc = 0.0
                            for j in range(dh):
                                hij = decay * H[i, j] + v[i] * k[j]
                                H[i, j] = hij
                                acc += hij * q[j]
                            y[i] = acc
                        den = 0.0
                        if norm_den:
                            z = key_sum[layer, r, hh]
                            for j in range(dh):
                                z[j] = decay * z[j] + k[j]
                                den += q[j] * z[j]
                    else:  # delta / gated-delta: L2-normalised keys and queries
                        beta = _sigmoid(g0)
                        nk = 0.0
                        nq = 0.0
                        for j in range(dh):
                            nk += k[j] * k[j]
                            nq += q[j] * q[j]
                        nk = 1.0 / np.sqrt(nk + 1e-6)
                        nq = 1.0 / np.sqrt(nq + 1e-6)
                        for j in range(dh):
                            k[j] *= nk
                            q[j] *= nq
                        if rule == 3:
                            g1 = pin[r, 2 * d + hh * gate_count + 1]
                            alpha = np.exp(log_lambda[layer, hh] * _softplus(g1 + 0.5413248546129181))
                            for i in range(dh):
                                for j in range(dh):
                                    H[i, j] = alpha * H[i, j]
                        for i in range(dh):
                            err = 0.0
                            for j in range(dh):
                                err += H[i, j] * k[j]
                            err = beta * (v[i] - err)
                            acc = 0.0
                            for j in range(dh):
                                hij = H[i, j] + err * k[j]
                                H[i, j] = hij
                                acc += hij * q[j]
                            y[i] = acc
                        den = 0.0
                    if norm_den:
                        inv = 1.0 / (den + 1e-6)
                    else:
                        ms = 0.0
                        for i in range(dh):
                            ms += y[i] * y[i]
                        inv = 1.0 / np.sqrt(ms / dh + 1e-6)
                    for i in range(dh):
                        y[i] = gain[layer, o + i] * (y[i] * inv)
        for r in range(B):  # AM-SU neurons
            for i in range(d):
                c = pin[r, i]
                if sigma == 0:
                    c = _sigmoid(c)
                elif sigma == 2:
                    c = np.tanh(c)
                elif sigma == 3:
                    c = max(c, 0.0)
                if reset_on:
                    u = beta_a[layer, i] * u_a[layer, r, i] * (1.0 - s_a[layer, r, i]) + c
                else:
                    u = beta_a[layer, i] * u_a[layer, r, i] + c
                u_a[layer, r, i] = u
                v = (u + fb[r, i]) - theta_a[layer, i] if astro else u - theta_a[layer, i]
                s_a[layer, r, i] = 1.0 if v >= 0 else 0.0
            _spike_accumulate(x[r], s_a[layer, r], w_out[layer], b_out[layer], tmp[r, :d])
        _layer_norm(x, ln2_w[layer], ln2_b[layer], a, eps_ln)
        hid = np.dot(a, w1[layer])
        n_hidden = hid.shape[1]
        for r in range(B):  # MLP neurons
            for i in range(n_hidden):
                c = hid[r, i] + b1[layer, i]
                if reset_on:
                    u = beta_m[layer, i] * u_m[layer, r, i] * (1.0 - s_m[layer, r, i]) + c
                else:
                    u = beta_m[layer, i] * u_m[layer, r, i] + c
                u_m[layer, r, i] = u
                s_m[layer, r, i] = 1.0 if u - theta_m[layer, i] >= 0 else 0.0
            _spike_accumulate(x[r], s_m[layer, r], w2[layer], b2[layer], tmp[r, :d])
    _layer_norm(x, lnf_w, lnf_b, a, eps_ln)
    logits[:] = np.dot(a, head_t) + head_b


# ---------------------------------------------------------------------------------------------- wrappers


def fused_unsupported_reason(model: nn.Module) -> str | None:
    """None when :class:`FusedDecoder` covers `model`, else why not (then :class:`StepDecoder` is used)."""
    from astrosnn.lm.model import AstroSNNLM

    if not isinstance(model, AstroSNNLM):
        return f"model kind {getattr(model, 'kind', type(model).__name__)!r} has no fused step"
    cfg = model.config.amsu
    if not cfg.spiking:
        return "neuron 'none' (linear-attention) has no fused step"
    w = model.embed.weight
    if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64):
        return f"the fused step runs float32/float64 CPU models, got {w.dtype} on {w.device}"
    if cfg.clock and cfg.clock_kind != "counter":
        return f"the {cfg.clock_kind} clock has no fused step"
    if model.training and model.config.dropout > 0:
        return "dropout is active (training mode): use model.step"
    return None


class StepDecoder:
    """The generic decoder: ``model.step`` per token (any model; the reference of the fused form)."""

    fused = False

    def __init__(self, model: nn.Module, reason: str | None = None) -> None:
        self.model = model
        self.fallback_reason = reason
        self._state: Any = None

    def load_state(self, state: Any) -> None:
        self._state = state

    def state(self) -> Any:
        return self._state

    def step(self, ids: Tensor) -> Tensor:
        logits, self._state = self.model.step(ids, self._state)
        return logits


def _np(t: Tensor, dtype: torch.dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(dtype).cpu().numpy())


class FusedDecoder:
    """All of an AstroSNN/LIF-SNN model's ``step`` in one numba call per token (see the module docstring).

    The weights are packed when the decoder is made: remake it after changing the model's parameters.
    ``load_state(state)`` takes a model state (from ``model(ids)`` or ``model.init_state``), ``step(ids (B,))``
    returns the logits ``(B, V)`` (a view of a buffer the next step overwrites), ``state()`` the model state.
    """

    fused = True
    fallback_reason = None

    @torch.no_grad()
    def __init__(self, model: nn.Module) -> None:
        reason = fused_unsupported_reason(model)
        if reason is not None:
            raise AstrosnnError(reason)
        self.model = model
        cfg = model.config
        a = cfg.amsu
        dt = model.embed.weight.dtype
        self.dtype = dt
        self.width, self.heads, self.astro = cfg.width, a.heads, a.astrocyte
        self.taps = a.shift_taps if a.astrocyte else 1
        d, L = cfg.width, cfg.layers
        blocks = list(model.blocks)
        self.hidden = blocks[0].fc1.out_features

        def stack(fn) -> np.ndarray:  # noqa: ANN001
            return np.ascontiguousarray(np.stack([_np(fn(b), dt) for b in blocks]))

        params = [b.amsu.params(dt) for b in blocks]
        self.ln1_w, self.ln1_b = stack(lambda b: b.norm1.weight), stack(lambda b: b.norm1.bias)
        self.ln2_w, self.ln2_b = stack(lambda b: b.norm2.weight), stack(lambda b: b.norm2.bias)
        ins, bias_in = [], []
        for p in params:
            w, bias = [p.w_current], [p.b_current]
            if self.astro:
                w.append(p.w_value)
                bias.append(torch.zeros(d, dtype=dt))
                if p.w_gate is not None:
                    w.append(p.w_gate)
                    bias.append(p.b_gate)
                if p.w_clock is not None:  # last: the kernel finds the clock's columns at the end
                    w.append(p.w_clock)
                    bias.append(p.b_clock)
            ins.append(_np(torch.cat(w).t(), dt))
            bias_in.append(_np(torch.cat(bias), dt))
        self.w_in, self.b_in = np.ascontiguousarray(np.stack(ins)), np.ascontiguousarray(np.stack(bias_in))
        one = np.zeros((L, 1, 1), dtype=self.w_in.dtype)
        if self.astro:
            self.w_kq = np.ascontiguousarray(np.stack([_np(torch.cat([p.w_key, p.w_query]).t(), dt) for p in params]))
            self.shift_w = np.ascontiguousarray(np.stack([_np(p.shift, dt) for p in params]))
            self.gain = np.ascontiguousarray(np.stack([_np(p.gain, dt) for p in params]))
            lam = [p.log_lambda if p.log_lambda is not None else torch.zeros(a.heads) for p in params]
            self.log_lambda = np.ascontiguousarray(np.stack([_np(v, dt) for v in lam]))
        else:
            self.w_kq, self.shift_w = one, one
            self.gain = np.zeros((L, d), dtype=self.w_in.dtype)
            self.log_lambda = np.zeros((L, a.heads), dtype=self.w_in.dtype)
        self.n_clock = a.clock
        if a.clock:
            self.clock_rate = np.ascontiguousarray(np.stack([_np(p.clock_rate, dt) for p in params]))
            self.w_ckq = np.ascontiguousarray(np.stack([_np(p.w_clock_kq.t(), dt) for p in params]))
        else:
            self.clock_rate = np.zeros((L, 0), dtype=self.w_in.dtype)
            self.w_ckq = np.zeros((L, 0, 2 * d), dtype=self.w_in.dtype)
        self.beta_a = np.ascontiguousarray(np.stack([_np(p.beta, dt) for p in params]))
        self.theta_a = np.ascontiguousarray(np.stack([_np(p.theta, dt) for p in params]))
        self.w_out = stack(lambda b: b.out.weight.t())  # rows: the column of each spiking input
        self.b_out = stack(lambda b: b.out.bias)
        self.w1, self.b1 = stack(lambda b: b.fc1.weight.t()), stack(lambda b: b.fc1.bias)
        self.beta_m = stack(lambda b: b.lif.beta)
        self.theta_m = stack(lambda b: b.lif.theta)
        self.w2, self.b2 = stack(lambda b: b.fc2.weight.t()), stack(lambda b: b.fc2.bias)
        self.embed = _np(model.embed.weight, dt)
        self.head_t = _np(model.head.weight.t(), dt)
        hb = model.head.bias
        self.head_b = _np(hb if hb is not None else torch.zeros(cfg.vocab_size), dt)
        self.lnf_w, self.lnf_b = _np(model.norm.weight, dt), _np(model.norm.bias, dt)
        self.eps_ln = float(model.norm.eps)
        self.flags = (a.astrocyte, _SIGMA[a.sigma], _PHI[a.phi], a.norm == "denominator", _MEMORY[a.memory],
                      a.reset_mode != "none", a.heads, self.taps)  # fmt: skip
        self.batch = -1
        self.load_state(model.init_state(1, dtype=dt))

    def _alloc(self, B: int) -> None:
        L, d, h, dh, H = len(self.ln1_w), self.width, self.heads, self.width // self.heads, self.hidden
        z = np.dtype(self.w_in.dtype)
        self.u_a, self.s_a = np.zeros((L, B, d), z), np.zeros((L, B, d), z)
        self.memory = np.zeros((L, B, h, dh, dh) if self.astro else (L, B, 1, 1, 1), z)
        self.key_sum = np.zeros((L, B, h, dh), z)
        self.shift = np.zeros((L, B, max(self.taps - 1, 0), d), z)
        self.clock = np.zeros((L, B, self.n_clock), z)
        self.u_m, self.s_m = np.zeros((L, B, H), z), np.zeros((L, B, H), z)
        self.x, self.a, self.xs, self.fb = (np.zeros((B, d), z) for _ in range(4))
        self.kq, self.tmp = np.zeros((B, 2 * d), z), np.zeros((B, d), z)
        self.logits = np.zeros((B, self.embed.shape[0]), z)
        self.logits_t = torch.from_numpy(self.logits)
        self.token = np.zeros(B, np.int64)
        self.batch = B

    def load_state(self, state: Any) -> None:
        """Copy a model state (tuple of ``BlockState``) into the buffers."""
        B = state[0].amsu.u.shape[0]
        if B != self.batch:
            self._alloc(B)
        for layer, block in enumerate(state):
            am, mlp = block
            self.u_a[layer] = am.u.detach().numpy()
            self.s_a[layer] = am.s.detach().numpy()
            if self.astro:
                self.memory[layer] = am.memory.detach().numpy()
                if self.flags[3]:
                    self.key_sum[layer] = am.key_sum.detach().numpy()
                self.shift[layer] = am.shift.detach().numpy()
                self.clock[layer] = am.clock.detach().numpy()
            self.u_m[layer] = mlp.u.detach().numpy()
            self.s_m[layer] = mlp.s.detach().numpy()

    def state(self) -> tuple:
        """The current state in the model's form (copies)."""
        from astrosnn.lm.amsu import AMSUState, amsu_state_shapes
        from astrosnn.lm.model import BlockState
        from astrosnn.lm.spiking import SpikingState

        shapes = amsu_state_shapes(self.model.config.amsu, self.batch)
        out = []
        for layer in range(len(self.ln1_w)):
            mem = self.memory[layer] if self.astro else np.zeros(shapes.memory, self.memory.dtype)
            ks = self.key_sum[layer] if self.astro and self.flags[3] else np.zeros(shapes.key_sum, self.memory.dtype)
            sh = self.shift[layer] if self.astro else np.zeros(shapes.shift, self.memory.dtype)
            clock = self.clock[layer]
            am = AMSUState(*(torch.from_numpy(np.array(t)) for t in (self.u_a[layer], self.s_a[layer], mem, ks, sh, clock)))
            mlp = SpikingState(torch.from_numpy(self.u_m[layer].copy()), torch.from_numpy(self.s_m[layer].copy()))
            out.append(BlockState(am, mlp))
        return tuple(out)

    def step(self, ids: Tensor) -> Tensor:
        """``ids (B,)`` -> ``logits (B, V)`` (valid until the next step); the state advances in place."""
        tok = ids.numpy() if isinstance(ids, Tensor) else np.asarray(ids)
        if tok.shape != (self.batch,):
            raise AstrosnnError(f"token ids must have shape ({self.batch},), got {tuple(tok.shape)}")
        if tok.min() < 0 or tok.max() >= self.embed.shape[0]:
            raise AstrosnnError(f"token ids must lie in [0, {self.embed.shape[0]})")
        self.token[:] = tok
        _fused_step(self.token, self.embed, self.head_t, self.head_b, self.lnf_w, self.lnf_b,
                    self.ln1_w, self.ln1_b, self.w_in, self.b_in, self.w_kq, self.shift_w, self.log_lambda,
                    self.gain, self.beta_a, self.theta_a, self.w_out, self.b_out, self.ln2_w, self.ln2_b,
                    self.w1, self.b1, self.beta_m, self.theta_m, self.w2, self.b2,
                    self.u_a, self.s_a, self.memory, self.key_sum, self.shift, self.u_m, self.s_m,
                    self.x, self.a, self.kq, self.xs, self.fb, self.tmp, self.logits,
                    self.clock, self.clock_rate, self.w_ckq, *self.flags, self.eps_ln)  # fmt: skip
        return self.logits_t

    def state_bytes(self) -> int:
        """Bytes of the recurrent state per batch (the model state's, not the work buffers)."""
        arrays = [self.u_a, self.s_a, self.u_m, self.s_m]
        if self.astro:
            arrays += [self.memory, self.shift, self.clock] + ([self.key_sum] if self.flags[3] else [])
        return sum(t.nbytes for t in arrays)


def make_decoder(model: nn.Module, fused: bool = True) -> FusedDecoder | StepDecoder:
    """The fused decoder when it covers `model` (and `fused`), else ``model.step`` (``fallback_reason`` says why)."""
    reason = fused_unsupported_reason(model) if fused else "fused decoding switched off"
    if reason is None:
        return FusedDecoder(model)
    return StepDecoder(model, reason)
