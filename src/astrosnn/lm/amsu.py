"""AM-SU: the Astrocyte-Modulated Spiking Unit (Shen et al. 2023), as fixed by ``specs/amsu.md``.

Per layer (width ``d``, ``h`` heads of size ``d_h = d / h``)::

    I_t = sigma(W_I x_t + b_I)                               neuron input current
    x~_t = sum_j w_j * x_{t-j}   (depthwise causal shift)   order signal for keys/queries
    c_t = exp(-A dt_t) c_{t-1} + dt_t u_t                   optional astrocyte clock (``clock`` channels > 0)
    k_t = phi(W_k x~_t + W_ck c_t),  q_t = phi(W_q x~_t + W_cq c_t),  v_t = W_v x_t
    H_t = lambda H_{t-1} + v_t k_t^T                         astrocyte memory, per head (write rule ``memory``:
                                                             hebbian | delta | gated | gated-delta)
    o_t = g * Norm(H_t q_t)                                  RMS norm, or / (q_t . z_t), z_t = lambda z_{t-1} + k_t
    u_t = beta u_{t-1} (1 - sg(s_{t-1})) + I_t
    s_t = Theta(u_t + o_t - theta)

With ``neuron="none"`` the layer has no neuron (no ``I_t``, ``u_t``, ``s_t``) and outputs ``o_t`` itself: a
linear-attention layer with the AM-SU's projections, token shift and memory (the ``linear-attention``
baseline that isolates what spiking costs). Rules with gates (``delta``: ``beta_t``; ``gated``: ``alpha_t``)
read them from one extra projection of ``x_t`` (``gate``, ``heads * gate_count`` outputs). The clock (off by
default, beyond the paper) is an input-gated leaky counter that addresses the k-th item of a list; see
:mod:`astrosnn.lm.clock`.

Two forms that agree to float precision: :func:`amsu_step` (one token, explicit state; generation)
and :func:`amsu_sequence` (training: the astrocyte memory exactly in chunks, the neuron as a fused scan).
The astrocyte is a linear-attention memory; its write rules live in :mod:`astrosnn.lm.memory`.
``AMSU`` is the ``nn.Module`` wrapper: ``forward(x (B, T, d), state=None) -> (spikes (B, T, d), state)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrosnn.core.surrogate import SURROGATE_NAMES, Surrogate, get_surrogate
from astrosnn.errors import AstrosnnError
from astrosnn.lm.base import DEFAULT_SIZE
from astrosnn.lm.clock import CLOCK_KINDS, clock_drive, clock_rates_init, clock_sequence, clock_step
from astrosnn.lm.clock_oscillator import oscillator_init, oscillator_sequence, oscillator_step
from astrosnn.lm.memory import SOFTPLUS_ONE, memory_names, memory_rule
from astrosnn.lm.scan import lif_scan, scan_backend_names
from astrosnn.lm.scan_common import reset_mode
from astrosnn.lm.spiking import SpikingState, spiking_step

__all__ = [
    "AMSU",
    "AMSUConfig",
    "AMSUParams",
    "AMSUState",
    "NEURONS",
    "NORMS",
    "PHIS",
    "SIGMAS",
    "amsu_sequence",
    "amsu_state_shapes",
    "amsu_step",
    "multiscale_lambdas",
]

SIGMAS = ("sigmoid", "identity", "tanh", "relu")
PHIS = ("elu+1", "relu", "softplus", "sigmoid", "identity")
NORMS = ("rms", "denominator")
NEURONS = ("lif", "none")
_EPS = 1e-6


def _sigma(name: str, x: Tensor) -> Tensor:
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "identity":
        return x
    if name == "tanh":
        return torch.tanh(x)
    return torch.relu(x)


def _phi(name: str, x: Tensor) -> Tensor:
    if name == "elu+1":
        return F.elu(x) + 1
    if name == "relu":
        return torch.relu(x)
    if name == "softplus":
        return F.softplus(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    return x


@dataclass
class AMSUConfig:
    """Every switch of the AM-SU layer (the spec's ablations). JSON-friendly: ``asdict`` round-trips.

    Attributes:
        width: channels ``d`` (input and output).
        heads: astrocyte heads ``h``; ``width`` must be divisible by it.
        astrocyte: False gives ``o_t = 0``: a plain LIF layer with ``sigma`` on its input.
        lambda_learnable: learn the per-head astrocyte decay (through a sigmoid).
        lambda_init: None = multi-scale ``1 - 2^(-5 - 3 i / max(h - 1, 1))`` per head; else one value.
        sigma: neuron input transfer (``sigmoid`` | ``identity`` | ``tanh`` | ``relu``).
        phi: positive feature map for keys/queries (``elu+1`` | ``relu`` | ``softplus`` | ``sigmoid`` |
            ``identity``).
        norm: readout normalisation (``rms`` | ``denominator`` = linear-attention ``q . z``).
        gain_init: initial per-channel gain ``g`` on the normalised readout.
        reset: hard reset after a spike; False = ``u_t = beta u_{t-1} + I_t``.
        cut_reset_grad: stop the gradient through the reset (default; see the spec).
        token_shift: depthwise causal shift of the last ``shift_size`` inputs for keys/queries.
        shift_size: taps of the shift (current token included).
        threshold / threshold_learnable: spike threshold theta (per channel when learnable).
        beta_init: initial membrane decay.
        surrogate / surrogate_alpha: surrogate spike derivative (alpha None = the surrogate's default).
        chunk_size: chunk length of the sequence form (any value >= 1; results do not depend on it).
        scan_backend: ``auto`` (numba on CPU, triton on CUDA) | ``numba`` | ``triton`` | ``torch``.
        memory: the astrocyte memory's write rule (``hebbian`` | ``delta`` | ``gated`` | ``gated-delta``; see
            :mod:`astrosnn.lm.memory`). ``delta`` and ``gated-delta`` refuse ``norm="denominator"``.
        neuron: ``lif`` (the AM-SU) | ``none`` (no neuron: the layer outputs ``o_t``, a linear-attention layer;
            needs the astrocyte).
        clock: channels of the astrocyte clock that feeds keys and queries (0 = none, the paper's layer; see
            :mod:`astrosnn.lm.clock`). Needs the astrocyte.
        clock_kind: ``counter`` (leaky counters) | ``oscillator`` (``clock / 2`` damped rotations, a phase code
            of the count; :mod:`astrosnn.lm.clock_oscillator`; ``clock`` even).
    """

    width: int = DEFAULT_SIZE.width
    heads: int = DEFAULT_SIZE.heads
    astrocyte: bool = True
    lambda_learnable: bool = True
    lambda_init: float | None = None
    sigma: str = "sigmoid"
    phi: str = "elu+1"
    norm: str = "rms"
    gain_init: float = 1.0
    reset: bool = True
    cut_reset_grad: bool = True
    token_shift: bool = True
    shift_size: int = 4
    threshold: float = 1.0
    threshold_learnable: bool = False
    beta_init: float = 0.9
    surrogate: str = "arctan"
    surrogate_alpha: float | None = None
    chunk_size: int = 32
    scan_backend: str = "auto"
    memory: str = "hebbian"
    neuron: str = "lif"
    clock: int = 0
    clock_kind: str = "counter"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def choice(field: str, value: str, options: tuple[str, ...]) -> None:
            if value not in options:
                raise AstrosnnError(
                    f"unknown AM-SU {field} {value!r}; choose one of {', '.join(options)}"
                )

        if self.width < 1 or self.heads < 1:
            raise AstrosnnError(
                f"AM-SU width and heads must be >= 1, got {self.width} and {self.heads}"
            )
        if self.width % self.heads:
            raise AstrosnnError(f"AM-SU width {self.width} is not divisible by heads {self.heads}")
        choice("sigma", self.sigma, SIGMAS)
        choice("phi", self.phi, PHIS)
        choice("norm", self.norm, NORMS)
        choice("surrogate", self.surrogate, SURROGATE_NAMES)
        choice("scan_backend", self.scan_backend, scan_backend_names())
        choice("memory", self.memory, memory_names())
        choice("neuron", self.neuron, NEURONS)
        if self.norm == "denominator" and not memory_rule(self.memory).supports_denominator:
            raise AstrosnnError(
                f"AM-SU norm 'denominator' needs positive keys; memory {self.memory!r} allows norm 'rms' only"
            )
        if self.neuron == "none" and not self.astrocyte:
            raise AstrosnnError("AM-SU neuron 'none' needs the astrocyte (astrocyte=False leaves no output)")
        if self.lambda_init is not None and not 0.0 < self.lambda_init < 1.0:
            raise AstrosnnError(f"AM-SU lambda_init must lie in (0, 1), got {self.lambda_init}")
        if not 0.0 < self.beta_init < 1.0:
            raise AstrosnnError(f"AM-SU beta_init must lie in (0, 1), got {self.beta_init}")
        if self.chunk_size < 1:
            raise AstrosnnError(f"AM-SU chunk_size must be >= 1, got {self.chunk_size}")
        if self.shift_size < 1:
            raise AstrosnnError(f"AM-SU shift_size must be >= 1, got {self.shift_size}")
        if self.clock < 0:
            raise AstrosnnError(f"AM-SU clock must be >= 0 channels, got {self.clock}")
        if self.clock and not self.astrocyte:
            raise AstrosnnError("AM-SU clock needs the astrocyte (it feeds the memory's keys and queries)")
        choice("clock_kind", self.clock_kind, CLOCK_KINDS)
        if self.clock_kind == "oscillator" and self.clock % 2:
            raise AstrosnnError(f"AM-SU oscillator clock needs an even number of channels (pairs), got {self.clock}")
        if self.surrogate_alpha is not None and not 0 < self.surrogate_alpha < float("inf"):
            raise AstrosnnError(f"AM-SU surrogate_alpha must be a finite number > 0, got {self.surrogate_alpha}")
        if not 0 < self.threshold < float("inf"):  # also refuses NaN
            raise AstrosnnError(f"AM-SU threshold must be a finite number > 0, got {self.threshold}")

    @property
    def head_size(self) -> int:
        return self.width // self.heads

    @property
    def reset_mode(self) -> str:
        return reset_mode(self.reset, self.cut_reset_grad)

    @property
    def clock_steps(self) -> int:
        """Step sizes the clock reads from each token: one per counter, one per oscillator (channel pair)."""
        return self.clock // 2 if self.clock_kind == "oscillator" else self.clock

    @property
    def shift_taps(self) -> int:
        """Taps of the key/query shift (1 = no shift)."""
        return self.shift_size if self.token_shift else 1

    @property
    def spiking(self) -> bool:
        return self.neuron == "lif"


def multiscale_lambdas(heads: int) -> list[float]:
    """Per-head astrocyte decays ``1 - 2^(-5 - 3 i / max(heads - 1, 1))``: slow, slower, ..."""
    return [1 - 2.0 ** (-5 - 3 * i / max(heads - 1, 1)) for i in range(heads)]


class AMSUState(NamedTuple):
    """State carried between tokens (all tensors; parts a configuration does not use have size 0).

    u: ``(B, d)`` membrane; s: ``(B, d)`` last spikes; memory: ``(B, h, d_h, d_h)`` the astrocyte's
    linear-attention memory ``H`` (value x key); key_sum: ``(B, h, d_h)`` ``z`` for the ``denominator`` norm;
    shift: ``(B, taps - 1, d)`` last inputs, oldest first; clock: ``(B, C)`` the astrocyte clock.
    """

    u: Tensor
    s: Tensor
    memory: Tensor
    key_sum: Tensor
    shift: Tensor
    clock: Tensor


class AMSUParams(NamedTuple):
    """The layer's tensors, as the pure functions use them (decays already through their sigmoid)."""

    w_current: Tensor | None  # (d, d); None without neuron
    b_current: Tensor | None  # (d,)
    w_key: Tensor | None  # (d, d)
    w_query: Tensor | None  # (d, d)
    w_value: Tensor | None  # (d, d)
    shift: Tensor | None  # (d, taps), tap 0 = current token
    log_lambda: Tensor | None  # (h,) log of the astrocyte decay (None when the memory rule has none)
    gain: Tensor | None  # (d,)
    beta: Tensor | None  # (d,)
    theta: Tensor | None  # (d,)
    surrogate: Surrogate
    w_gate: Tensor | None = None  # (h * gate_count, d): the memory rule's gate pre-activations
    b_gate: Tensor | None = None  # (h * gate_count,)
    w_clock: Tensor | None = None  # (S + C, d): the clock's S step-size and C drive pre-activations
    b_clock: Tensor | None = None  # (S + C,)
    clock_rate: Tensor | None = None  # (S,) A > 0, one per step size (counter or oscillator)
    clock_freq: Tensor | None = None  # (C / 2,) angular frequencies of the oscillator clock; None for counters
    w_clock_kq: Tensor | None = None  # (2d, C): the clock's key | query contributions


def amsu_state_shapes(config: AMSUConfig, batch_size: int) -> AMSUState:
    """The shape of each state tensor (parts a configuration does not use have size 0)."""
    d, h, dh = config.width, config.heads, config.head_size
    astro = config.astrocyte
    n = d if config.spiking else 0
    return AMSUState(
        u=(batch_size, n),
        s=(batch_size, n),
        memory=(batch_size, h, dh, dh) if astro else (batch_size, 0),
        key_sum=(batch_size, h, dh) if astro and config.norm == "denominator" else (batch_size, 0),
        shift=(batch_size, config.shift_taps - 1 if astro else 0, d),
        clock=(batch_size, config.clock),
    )


def init_amsu_state(config: AMSUConfig, batch_size: int, device=None, dtype=None) -> AMSUState:  # noqa: ANN001
    """Fresh zero state."""
    dtype = dtype or torch.get_default_dtype()
    shapes = amsu_state_shapes(config, batch_size)
    return AMSUState(*(torch.zeros(shape, device=device, dtype=dtype) for shape in shapes))


def _readout_norm(y: Tensor, config: AMSUConfig, denominator: Tensor | None) -> Tensor:
    """``y (..., h, d_h)`` normalised per head."""
    if config.norm == "denominator":
        return y / (denominator.unsqueeze(-1) + _EPS)
    return F.rms_norm(y, (y.shape[-1],), eps=_EPS)


def _current_and_value(
    x: Tensor, params: AMSUParams, config: AMSUConfig
) -> tuple[Tensor, Tensor | None]:
    """``I = sigma(W_I x + b_I)`` and ``v = W_v x`` (one matrix product when both are needed)."""
    if not config.spiking:
        return None, F.linear(x, params.w_value)
    if not config.astrocyte:
        return _sigma(config.sigma, F.linear(x, params.w_current, params.b_current)), None
    d = config.width
    weight = torch.cat([params.w_current, params.w_value])
    bias = torch.cat([params.b_current, params.b_current.new_zeros(d)])
    current, value = F.linear(x, weight, bias).split(d, dim=-1)  # split: one cheap backward, not two
    return _sigma(config.sigma, current), value


def _keys_and_queries(
    x_shift: Tensor, params: AMSUParams, config: AMSUConfig, clock: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``k = phi(W_k x~ [+ W_ck c])``, ``q = phi(W_q x~ [+ W_cq c])`` with one matrix product each."""
    pre = F.linear(x_shift, torch.cat([params.w_key, params.w_query]))
    if clock is not None:
        pre = pre + F.linear(clock, params.w_clock_kq)
    key, query = _phi(config.phi, pre).split(config.width, dim=-1)
    return key, query


def _clock_advance(
    x: Tensor, clock: Tensor, params: AMSUParams, config: AMSUConfig
) -> tuple[Tensor, Tensor]:
    """The clock over ``x (B, T, d)`` from ``clock (B, C)``: ``(c (B, T, C), last clock)``."""
    dt, u = clock_drive(x, params.w_clock, params.b_clock, config.clock_steps)
    if params.clock_freq is None:
        return clock_sequence(dt, u, params.clock_rate, clock, config.chunk_size)
    return oscillator_sequence(dt, u, params.clock_rate, params.clock_freq, clock, config.chunk_size)


def _clock_tick(x: Tensor, clock: Tensor, params: AMSUParams, config: AMSUConfig) -> Tensor:
    """One token of the clock: ``x (B, d)``, ``clock (B, C)`` -> the new clock."""
    dt, u = clock_drive(x, params.w_clock, params.b_clock, config.clock_steps)
    if params.clock_freq is None:
        return clock_step(dt, u, params.clock_rate, clock)
    return oscillator_step(dt, u, params.clock_rate, params.clock_freq, clock)


def _gates(x: Tensor, params: AMSUParams, config: AMSUConfig) -> Tensor | None:
    """The memory rule's raw gate pre-activations ``(B, [T,] h, gate_count)``, or None."""
    if params.w_gate is None:
        return None
    out = F.linear(x, params.w_gate, params.b_gate)
    return out.view(*x.shape[:-1], config.heads, -1)


def _token_shift(x: Tensor, shift_state: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """``x~_t = sum_j w[:, j] * x_{t-j}`` over ``x (B, T, d)`` preceded by ``shift_state (B, taps-1, d)``.

    Returns ``x~ (B, T, d)`` and the new shift state (the last ``taps - 1`` inputs).
    """
    taps, T = weights.shape[1], x.shape[1]
    if taps == 1:
        return x * weights[:, 0], shift_state
    padded = torch.cat([shift_state, x], dim=1)  # (B, taps - 1 + T, d), oldest first
    out = x * weights[:, 0]
    for j in range(1, taps):
        out = torch.addcmul(out, padded[:, taps - 1 - j : taps - 1 - j + T], weights[:, j])
    return out, padded[:, padded.shape[1] - (taps - 1) :]


def amsu_step(
    x: Tensor, state: AMSUState, params: AMSUParams, config: AMSUConfig
) -> tuple[Tensor, AMSUState]:
    """One token: ``x (B, d)`` -> ``(spikes (B, d), new state)``. The recurrent form, for generation."""
    B, d = x.shape
    h, dh = config.heads, config.head_size
    current, v = _current_and_value(x, params, config)
    memory, key_sum, shift, clock = state.memory, state.key_sum, state.shift, state.clock
    feedback = None
    if config.astrocyte:
        x_shift, shift = _token_shift(x.unsqueeze(1), shift, params.shift)
        if config.clock:
            clock = _clock_tick(x, clock, params, config)
        k, q = _keys_and_queries(x_shift.squeeze(1), params, config, clock if config.clock else None)
        k, q, v = k.reshape(B, h, dh), q.reshape(B, h, dh), v.reshape(B, h, dh)
        use_den = config.norm == "denominator"
        y, den, memory, key_sum_new = memory_rule(config.memory).step(
            q, k, v, memory, key_sum if use_den else None, params.log_lambda, _gates(x, params, config)
        )
        if use_den:
            key_sum = key_sum_new
        feedback = params.gain * _readout_norm(y, config, den).reshape(B, d)
    if not config.spiking:
        return feedback, AMSUState(state.u, state.s, memory, key_sum, shift, clock)
    s, neurons = spiking_step(
        current, SpikingState(state.u, state.s), params.beta, params.theta, params.surrogate,
        config.reset_mode, feedback,
    )  # fmt: skip
    return s, AMSUState(neurons.u, neurons.s, memory, key_sum, shift, clock)


def amsu_sequence(
    x: Tensor, state: AMSUState, params: AMSUParams, config: AMSUConfig
) -> tuple[Tensor, AMSUState]:
    """The sequence form: ``x (B, T, d)`` -> ``(spikes (B, T, d), state after the last token)``."""
    B, T, d = x.shape
    h, dh = config.heads, config.head_size
    current, v = _current_and_value(x, params, config)
    memory, key_sum, shift, clock = state.memory, state.key_sum, state.shift, state.clock
    feedback = None
    if config.astrocyte:
        x_shift, shift = _token_shift(x, shift, params.shift)
        clocks = None
        if config.clock:
            clocks, clock = _clock_advance(x, clock, params, config)
        k, q = _keys_and_queries(x_shift, params, config, clocks)

        def heads(
            t: Tensor,
        ) -> Tensor:  # (B, T, d) -> contiguous (B, h, T, dh) for the chunk products
            return t.reshape(B, T, h, dh).transpose(1, 2).contiguous()

        k, q, v = heads(k), heads(q), heads(v)
        gates = _gates(x, params, config)
        if gates is not None:
            gates = gates.transpose(1, 2)  # (B, h, T, gate_count)
        use_den = config.norm == "denominator"
        y, den, memory, key_sum_new = memory_rule(config.memory).sequence(
            q, k, v, memory, key_sum if use_den else None, params.log_lambda, config.chunk_size, gates
        )
        if use_den:
            key_sum = key_sum_new
            den = den.transpose(1, 2)
        y = _readout_norm(y.transpose(1, 2), config, den)  # (B, T, h, dh)
        feedback = params.gain * y.reshape(B, T, d)
    if not config.spiking:
        return feedback, AMSUState(state.u, state.s, memory, key_sum, shift, clock)
    spikes, u = lif_scan(
        current, feedback, params.beta, params.theta, state.u, state.s, params.surrogate,
        config.reset_mode, config.scan_backend,
    )  # fmt: skip
    s_last = spikes[:, -1] if T else state.s
    return spikes, AMSUState(u, s_last, memory, key_sum, shift, clock)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class AMSU(nn.Module):
    """The AM-SU layer; a drop-in spiking time-mixing layer.

    ``forward(x, state=None)``: ``x`` float ``(B, T, width)`` -> ``(spikes (B, T, width) in {0, 1},
    AMSUState)``. ``state=None`` starts from zeros; pass the returned state back to continue the
    sequence (detach it for truncated BPTT). ``step(x_t (B, width), state)`` is the one-token form.
    The module keeps no hidden state.
    """

    def __init__(self, config: AMSUConfig | None = None, **options: object) -> None:
        super().__init__()
        if config is None:
            config = AMSUConfig(**options)  # type: ignore[arg-type]
        elif options:
            raise AstrosnnError("pass either an AMSUConfig or keyword options, not both")
        config.validate()
        self.config = config
        d, h = config.width, config.heads
        rule = memory_rule(config.memory)
        if config.spiking:
            self.current = nn.Linear(d, d)
        self.surrogate = get_surrogate(config.surrogate, config.surrogate_alpha)
        if config.spiking:
            self.beta_logit = nn.Parameter(torch.full((d,), _logit(config.beta_init)))
            theta = torch.full((d,), float(config.threshold))
            if config.threshold_learnable:
                self.theta = nn.Parameter(theta)
            else:
                self.register_buffer("theta", theta)
        if config.astrocyte:
            self.key = nn.Linear(d, d, bias=False)
            self.query = nn.Linear(d, d, bias=False)
            self.value = nn.Linear(d, d, bias=False)
            taps = config.shift_taps
            shift = torch.zeros(d, taps)
            shift[:, 0] = 1.0
            if taps > 1:
                bound = 1 / math.sqrt(taps)
                shift[:, 1:].uniform_(-bound, bound)
            self.shift = nn.Parameter(shift)
            if rule.uses_decay:
                lams = multiscale_lambdas(h) if config.lambda_init is None else [config.lambda_init] * h
                lam_logit = torch.tensor([_logit(v) for v in lams])
                if config.lambda_learnable:
                    self.lambda_logit = nn.Parameter(lam_logit)
                else:
                    self.register_buffer("lambda_logit", lam_logit)
            self.gain = nn.Parameter(torch.full((d,), float(config.gain_init)))
            if rule.gate_count:  # created last: the hebbian layer's parameters (and RNG draws) are unchanged
                self.gate = nn.Linear(d, h * rule.gate_count)
                nn.init.zeros_(self.gate.bias)  # beta_t = 1/2, alpha_t = lambda at a zero input
            if config.clock:  # created last too; W_ck = W_cq = 0: at init the layer is the clock-free one
                C, S = config.clock, config.clock_steps
                self.clock_in = nn.Linear(d, S + C)
                with torch.no_grad():  # dt = softplus(log(e - 1)) = 1 and u = 1 at a zero input: it counts tokens
                    self.clock_in.bias[:S] = SOFTPLUS_ONE
                    self.clock_in.bias[S:] = 1.0
                if config.clock_kind == "oscillator":
                    rates, freqs = oscillator_init(S)
                    self.clock_freq = nn.Parameter(freqs)
                else:
                    rates = clock_rates_init(C)
                self.clock_log_rate = nn.Parameter(rates.log())
                self.clock_kq = nn.Parameter(torch.zeros(2 * d, C))

    @property
    def astrocyte_decay(self) -> Tensor | None:
        """Per-head lambda in (0, 1), or None without astrocyte or with a memory rule without decay."""
        return torch.sigmoid(self.lambda_logit) if hasattr(self, "lambda_logit") else None

    def params(self, dtype: torch.dtype | None = None) -> AMSUParams:
        """The tensors the pure functions take (differentiable views of the parameters)."""
        astro, spiking = self.config.astrocyte, self.config.spiking
        decay = hasattr(self, "lambda_logit")
        gate = getattr(self, "gate", None)
        clock = self.config.clock > 0

        def cast(t: Tensor) -> Tensor:
            return t if dtype is None else t.to(dtype)

        return AMSUParams(
            w_current=cast(self.current.weight) if spiking else None,
            b_current=cast(self.current.bias) if spiking else None,
            w_key=cast(self.key.weight) if astro else None,
            w_query=cast(self.query.weight) if astro else None,
            w_value=cast(self.value.weight) if astro else None,
            shift=cast(self.shift) if astro else None,
            log_lambda=cast(F.logsigmoid(self.lambda_logit)) if decay else None,
            gain=cast(self.gain) if astro else None,
            beta=cast(torch.sigmoid(self.beta_logit)) if spiking else None,
            theta=cast(self.theta) if spiking else None,
            surrogate=self.surrogate,
            w_gate=None if gate is None else cast(gate.weight),
            b_gate=None if gate is None else cast(gate.bias),
            w_clock=cast(self.clock_in.weight) if clock else None,
            b_clock=cast(self.clock_in.bias) if clock else None,
            clock_rate=cast(self.clock_log_rate.exp()) if clock else None,
            clock_freq=cast(self.clock_freq) if hasattr(self, "clock_freq") else None,
            w_clock_kq=cast(self.clock_kq) if clock else None,
        )

    def init_state(self, batch_size: int, device=None, dtype=None) -> AMSUState:  # noqa: ANN001
        ref = self.gain if not self.config.spiking else self.beta_logit
        return init_amsu_state(self.config, batch_size, device or ref.device, dtype or ref.dtype)

    def _check_input(self, x: Tensor, ndim: int) -> None:
        shape = "(B, T, width)" if ndim == 3 else "(B, width)"
        if not isinstance(x, Tensor):
            raise AstrosnnError(f"AM-SU input must be a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise AstrosnnError(f"AM-SU input must be a float tensor, got {x.dtype}")
        if x.ndim != ndim or x.shape[-1] != self.config.width:
            raise AstrosnnError(
                f"AM-SU input must have shape {shape} with width {self.config.width}, got {tuple(x.shape)}"
            )

    def _check_state(self, state: AMSUState, x: Tensor) -> None:
        want = amsu_state_shapes(self.config, x.shape[0])
        if not isinstance(state, tuple) or len(state) != len(want):
            raise AstrosnnError(
                "AM-SU state must be an AMSUState (u, s, memory, key_sum, shift, clock) from init_state"
            )
        for name, have, shape in zip(AMSUState._fields, state, want):
            if tuple(have.shape) != shape:
                raise AstrosnnError(
                    f"AM-SU state {name} has shape {tuple(have.shape)}, expected {shape}"
                )

    def _run(self, form, x: Tensor, state: AMSUState | None, ndim: int) -> tuple[Tensor, AMSUState]:  # noqa: ANN001
        self._check_input(x, ndim)
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        else:
            self._check_state(state, x)
        return form(x, state, self.params(x.dtype), self.config)

    def forward(self, x: Tensor, state: AMSUState | None = None) -> tuple[Tensor, AMSUState]:
        """A sequence: ``x (B, T, width)`` -> ``(spikes (B, T, width), state)``."""
        return self._run(amsu_sequence, x, state, 3)

    def step(self, x: Tensor, state: AMSUState | None = None) -> tuple[Tensor, AMSUState]:
        """One token: ``x (B, width)`` -> ``(spikes (B, width), state)``."""
        return self._run(amsu_step, x, state, 2)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"width={c.width}, heads={c.heads}, astrocyte={c.astrocyte}, norm={c.norm!r}, "
            f"reset={c.reset_mode!r}, token_shift={c.token_shift}, memory={c.memory!r}, neuron={c.neuron!r}"
            + (f", clock={c.clock}" if c.clock else "")
        )
