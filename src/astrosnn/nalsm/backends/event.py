"""The "event" / "event64" backends: numba, event-driven synaptic current; exact up to a stated tolerance.

The reference re-sums, every ms, sum_j W_ij exp(-delta_j) over every presynaptic neuron j that spiked in
the last 88 ms (nalsm.md §1.1; tau_u = 1 ms, only the last spike of j counts). With tau_u = 1 the response
of j is u_j = exp(-delta_j): it jumps to 1 on a spike and is multiplied by e^-1 every ms. So the current
of post neuron i, C_i = sum_j W_ij u_j, can be kept as one running value per neuron:

- every ms it decays: C_i <- e^-1 C_i (all pre neurons that did not spike);
- a spike of j adds W_ij (1 - u_j^before) to each of its targets (u_j jumps from exp(-delta_j) to 1);
- an STDP change of W_ij adds dW_ij u_j(t) (the reference uses the *current* weight every ms: the weights
  after step 8 of ms t are those step 5 of ms t + 1 multiplies);
- at the start of a sample every delta_j = delta_init, so C_i = R_i exp(-delta_init) with R_i = sum_j W_ij.

The per-ms work is then proportional to the synapses of the neurons that spike (which STDP visits anyway),
not to those of every recently active neuron; the spike jump and the presynaptic STDP update share one pass.
The postsynaptic STDP pass skips synapses whose pre neuron has no trace and did not spike (dW = 0 exactly);
in phase 2 the incoming lists are first cut, per sample, to pre neurons that can be active at all (liquid
neurons, and input neurons with an input event or a start trace): ~4x fewer visits on MNIST.

Exactness. STDP, traces and the astrocyte use the reference's float32 formulas unchanged (they depend on
spikes only), so while the spikes agree the weights, traces and astrocyte are bit-identical. What differs is
the membrane potential: a running sum rounds differently from the reference's ordered float32 re-sum, and
the response cut-off of `synaptic_response_table` (exp(-k) = 0 for k >= 88) becomes a decay that never quite
reaches 0 (a difference below 1e-36). "event64" keeps C and v in float64: its potential differs from the
reference's by the reference's own float32 rounding (~1e-6), so spikes differ only where the reference's v
lands within that of the threshold (tests: spike for spike on the engine test cases; BENCHMARKS.md: rates on
MNIST). "event" keeps them in float32 (same speed class; tolerance in BENCHMARKS.md). Neither is
bit-identical to "reference"; the "fast" backend is.

Phase 2 runs samples in parallel (numba prange, one sample per task, private state); phase 1 runs blocks of
samples per compiled call, R re-summed from the weights at the start of every sample (a running R carried
through the weight changes rounds differently, so results would depend on where phase 1 is split: a resumed
phase 1 must give the weights of an uninterrupted one bit for bit).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from numba import njit, prange

from astrosnn.core.astrocyte import density_mask
from astrosnn.core.lif import synaptic_response_table
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.backends.astrocyte_numba import astrocyte_ms
from astrosnn.nalsm.backends.fast import (
    BatchBuffers,
    dynamics,
    sequence_in_blocks,
    slot_layout,
)
from astrosnn.nalsm.params import LIF, PlasticityConfig, SimulationResult
from astrosnn.nalsm.topology import PRE_EXC, PRE_INH, PRE_INPUT, Network, block_bounds

DTYPES = {"float32": np.float32, "float64": np.float64}
FLUSH = 1e-30  # running currents below this are set to 0 (no float32 denormal arithmetic; far below any v)


class EventLayout(NamedTuple):
    """Synapses in slot order (sorted by (pre, post), as `fast.SlotLayout`) plus, per post neuron, its
    incoming slots grouped by presynaptic kind (exc, inh, input), each group sorted by pre."""

    order: np.ndarray  # int64 (S,) network synapse index of each slot
    in_order: bool
    post: np.ndarray  # int32 (S,)
    out_ptr: np.ndarray  # int64 (M + 1,)
    pre_kind: np.ndarray  # int8 (M,) kind of each neuron as a presynaptic neuron
    in_grp: np.ndarray  # int64 (N, 4): group k of post i is in_slot[in_grp[i, k]:in_grp[i, k + 1]]
    in_slot: np.ndarray  # int32 (S,)
    in_pre: np.ndarray  # int32 (S,)


def event_layout(network: Network) -> EventLayout:
    base = slot_layout(network)
    m, n = network.n_neurons, network.n_liquid
    if network.n_synapses and int(base.post.max()) >= n:
        raise AstrosnnError("the event backend needs every synapse to end on a liquid neuron")
    pre_s = network.pre[base.order]
    kind_s = base.kind
    pre_kind = np.full(m, PRE_EXC, np.int8)
    pre_kind[pre_s] = kind_s
    if not np.array_equal(pre_kind[pre_s], kind_s):
        raise AstrosnnError("the event backend needs one kind (exc/inh/input) per presynaptic neuron")
    if not np.isin(kind_s, (PRE_EXC, PRE_INH, PRE_INPUT)).all():
        raise AstrosnnError("unknown presynaptic kind in the network")
    group = np.array([0, 1, 2], np.int64)[kind_s.astype(np.int64)]  # PRE_EXC, PRE_INH, PRE_INPUT = 0, 1, 2
    post_s = base.post.astype(np.int64)
    in_slot = np.lexsort((pre_s, group, post_s))
    key = post_s[in_slot] * 3 + group[in_slot]
    counts = np.bincount(key, minlength=3 * n).reshape(n, 3)
    in_grp = np.zeros((n, 4), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts.ravel())])[:-1].reshape(n, 3)
    in_grp[:, :3] = starts
    in_grp[:, 3] = starts[:, 2] + counts[:, 2]
    return EventLayout(order=base.order, in_order=base.in_order, post=base.post, out_ptr=base.out_ptr,
                       pre_kind=pre_kind, in_grp=in_grp, in_slot=in_slot.astype(np.int32),
                       in_pre=pre_s[in_slot].astype(np.int32))


@njit(cache=True)
def _row_sums(post, w, r):
    """r[i] = sum of the weights of the synapses ending on i (in r's dtype)."""
    r[:] = 0
    for s in range(w.shape[0]):
        r[post[s]] += w[s]


@njit(cache=True)
def _sample_event(post, out_ptr, pre_kind, in_grp, in_slot, in_pre, bounds, tbl, mask, n,
                  w, inputs, x, counts, astro_trace, raster, record, rsum, p):
    """One sample from a reset state; w (slot order), x, counts, astro_trace, raster updated in place.

    rsum (N,) = row sums of w on entry (`_row_sums`): the start current is rsum * exp(-delta_init)."""
    tau_v, v_thr, v_reset, in_current = p.tau_v, p.v_thr, p.v_reset, p.input_current
    eta, a, d = p.eta_p, p.trace_a, p.trace_decay
    a_tau, a_w, a_b, a_val, decay = p.astro_tau, p.astro_weight, p.astro_bias, p.astro_init, p.rate_decay
    refractory, delta_init, delta_max, rule = p.refractory, p.delta_init, p.delta_max, p.rule
    inh = np.int8(PRE_INH)
    m = x.shape[0]
    n_in = inputs.shape[1]
    steps = inputs.shape[0]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    fone = tbl[0] - tbl[0] + 1  # 1 in the current's dtype
    fzero = fone - fone
    kdecay = tbl[1] / tbl[0]  # e^-1
    v = np.zeros(m, tbl.dtype)
    ref = np.zeros(m, np.int32)
    delta = np.full(m, delta_init, np.int32)
    u = np.zeros(m, tbl.dtype)  # response of each neuron this ms (table[delta] after the reset)
    sf = np.zeros(m, np.float32)  # 1.0 where the neuron spiked this ms
    spk = np.zeros(m, np.bool_)
    fired = np.zeros(m, np.int64)
    jump = np.zeros(m, tbl.dtype)  # 1 - response before the reset, per firing (index k of fired)
    cur = np.empty(n, tbl.dtype)  # running synaptic current (decayed to this ms before spikes are added)
    jmp = np.zeros(n, tbl.dtype)  # this ms's spike jumps (old weights)
    dlt = np.zeros(n, tbl.dtype)  # this ms's STDP changes x response (apply from the next ms)
    u0 = tbl[min(delta_init, delta_max)]
    for i in range(n):
        cur[i] = rsum[i] * u0
    for t in range(steps):
        nf = 0
        for i in range(m):  # 1, 2, 4
            s_ = v[i] >= v_thr and ref[i] == 0
            spk[i] = s_
            if s_:
                v[i] = v_reset
                jump[nf] = fone - tbl[delta[i]]
                delta[i] = 0
                fired[nf] = i
                nf += 1
                sf[i] = one
            else:
                sf[i] = zero
            u[i] = tbl[delta[i]]
        for k in range(nf):  # 3
            i = fired[k]
            if record:
                raster[t, i] = True
            if i < n:
                counts[i] += one
        dep = a_val if rule == 2 else eta
        # 5 (spike jumps) fused with 8 as presynaptic neuron (targets that did not spike; u_j = 1)
        for k in range(nf):
            j = fired[k]
            fj = jump[k]
            lo = bounds[pre_kind[j], 0]
            hi = bounds[pre_kind[j], 1]
            is_inh = pre_kind[j] == inh
            for s in range(out_ptr[j], out_ptr[j + 1]):
                q = post[s]
                wo = w[s]
                jmp[q] += wo * fj
                if rule != 0 and not spk[q]:
                    acausal = x[q]
                    if is_inh:
                        nw = wo + (eta * acausal - dep * zero)
                    else:
                        nw = wo + (eta * zero - dep * acausal)
                    nw = min(max(nw, lo), hi)
                    w[s] = nw
                    dw = nw - wo
                    dlt[q] += dw
        if rule != 0:  # 8 as postsynaptic neuron: every incoming synapse (causal, plus acausal if pre spiked)
            for k in range(nf):
                i = fired[k]
                if i >= n:
                    continue
                xi = x[i]
                acc = fzero
                for g in range(3):
                    lo = bounds[g, 0]
                    hi = bounds[g, 1]
                    if g == 1:  # PRE_INH
                        for q in range(in_grp[i, g], in_grp[i, g + 1]):
                            j = in_pre[q]
                            causal = x[j]
                            sj = sf[j]
                            if causal == zero and sj == zero:
                                continue  # dW = 0: a pre neuron without trace that did not spike
                            acausal = xi * sj
                            s = in_slot[q]
                            wo = w[s]
                            nw = min(max(wo + (eta * acausal - dep * causal), lo), hi)
                            w[s] = nw
                            dw = nw - wo
                            acc += dw * u[j]
                    else:
                        for q in range(in_grp[i, g], in_grp[i, g + 1]):
                            j = in_pre[q]
                            causal = x[j]
                            sj = sf[j]
                            if causal == zero and sj == zero:
                                continue
                            acausal = xi * sj
                            s = in_slot[q]
                            wo = w[s]
                            nw = min(max(wo + (eta * causal - dep * acausal), lo), hi)
                            w[s] = nw
                            dw = nw - wo
                            acc += dw * u[j]
                dlt[i] += acc
        for i in range(n):  # 5, 6, 7, 9 (liquid)
            c = cur[i] + jmp[i]
            v[i] = (v[i] - v[i] / tau_v) + c
            c = (c + dlt[i]) * kdecay
            if abs(c) < FLUSH:
                c = fzero
            cur[i] = c
            jmp[i] = fzero
            dlt[i] = fzero
        for k in range(n_in):  # input neurons: no synapses in, current 100 per input spike
            i = n + k
            v[i] = (v[i] - v[i] / tau_v) + (in_current if inputs[t, k] else fzero)
        for i in range(m):
            if delta[i] < delta_max:
                delta[i] += 1
            if spk[i]:
                ref[i] = refractory
            elif ref[i] > 0:
                ref[i] -= 1
            x[i] = d * (x[i] + a * sf[i])
        a_val, a_w, a_b, eta = astrocyte_ms(fired, nf, mask, n, a_val, a_w, a_b, a_tau, eta, decay)  # 10, 11
        astro_trace[t] = a_val


@njit(cache=True)
def _live_inputs(in_grp, in_slot, in_pre, live, grp, slot, pre):
    """The incoming-synapse lists restricted to presynaptic neurons that can be live (`live`): grp, slot, pre
    filled like in_grp, in_slot, in_pre. A neuron without input events or trace never spikes or gets a
    trace in the sample, so its synapses never change (dW = 0)."""
    c = 0
    for i in range(in_grp.shape[0]):
        for g in range(3):
            grp[i, g] = c
            for q in range(in_grp[i, g], in_grp[i, g + 1]):
                j = in_pre[q]
                if live[j]:
                    slot[c] = in_slot[q]
                    pre[c] = j
                    c += 1
        grp[i, 3] = c


@njit(cache=True, parallel=True)
def _batch_event(post, out_ptr, pre_kind, in_grp, in_slot, in_pre, bounds, tbl, mask, n,
                 w, inputs, x, counts, astro_trace, raster, record, live, p):
    for b in prange(w.shape[0]):
        rsum = np.zeros(n, tbl.dtype)
        _row_sums(post, w[b], rsum)
        grp = np.empty_like(in_grp)
        slot = np.empty_like(in_slot)
        pre = np.empty_like(in_pre)
        _live_inputs(in_grp, in_slot, in_pre, live[b], grp, slot, pre)
        _sample_event(post, out_ptr, pre_kind, grp, slot, pre, bounds, tbl, mask, n,
                      w[b], inputs[b], x[b], counts[b], astro_trace[b], raster[b], record, rsum, p)


@njit(cache=True)
def _sequence_event(post, out_ptr, pre_kind, in_grp, in_slot, in_pre, bounds, tbl, mask, n, w, samples, x, p):
    """Phase 1: samples one after another, weights w (S,) and traces x (M,) carried, the rest reset.

    The row sums are re-summed from w at the start of every sample (as `_batch_event` does), not carried
    through the weight changes: a carried running sum rounds differently from a fresh one, so the currents
    (and in principle spikes) would depend on where a sequence is split into blocks or resumable pieces."""
    counts = np.zeros(n, np.float32)
    astro_trace = np.zeros(samples.shape[1], np.float32)
    raster = np.zeros((1, 1), np.bool_)
    rsum = np.zeros(n, tbl.dtype)
    for k in range(samples.shape[0]):
        _row_sums(post, w, rsum)
        _sample_event(post, out_ptr, pre_kind, in_grp, in_slot, in_pre, bounds, tbl, mask, n,
                      w, samples[k], x, counts, astro_trace, raster, False, rsum, p)


def response_table(dtype) -> np.ndarray:
    """exp(-k), k = 0..delta_max: float64 in full; float32 as the reference's (0 from k = 88)."""
    if np.dtype(dtype) == np.float64:
        return np.exp(-np.arange(LIF.delta_max + 1, dtype=np.float64))
    return synaptic_response_table(LIF).numpy().astype(np.float32)


class EventBackend:
    """`astrosnn.nalsm.backends.Backend`, event-driven; `dtype` ("float32" or "float64") of the synaptic
    current and membrane potential (weights, traces and the astrocyte are float32 as in the reference)."""

    def __init__(self, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise AstrosnnError(f"unknown event-backend dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        self.dtype = dtype
        self._table = response_table(DTYPES[dtype])

    def _arrays(self, network: Network, plasticity: PlasticityConfig) -> tuple[EventLayout, tuple]:
        lay = network.memo("event-backend-layout", event_layout)
        mask = density_mask(network.n_liquid, network.n_input, plasticity.astro_density, plasticity.seed)
        return lay, (lay.post, lay.out_ptr, lay.pre_kind, lay.in_grp, lay.in_slot, lay.in_pre, block_bounds(),
                     self._table, mask, network.n_liquid)

    def run_batch(self, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
                  weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        lay, arrays = self._arrays(network, plasticity)
        buf = BatchBuffers.allocate(lay, network, input_spikes, weights, record, traces)
        n = network.n_liquid
        # liquid neurons may always fire; an input neuron only with an input event (or a trace to start from)
        live = np.ones(buf.x.shape, np.bool_)
        live[:, n:] = buf.inputs.any(axis=1) | (buf.x[:, n:] != 0)
        if buf.inputs.shape[0]:  # a batch of samples
            _batch_event(*arrays, buf.w, buf.inputs, buf.x, buf.counts, buf.astro, buf.raster, record, live,
                         dynamics(plasticity))
        return buf.result(lay, record)

    def run_sequence(self, network: Network, samples: Iterable[torch.Tensor], plasticity: PlasticityConfig,
                     weights: torch.Tensor, traces: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        lay, arrays = self._arrays(network, plasticity)
        return sequence_in_blocks(_sequence_event, arrays, lay, network, samples, dynamics(plasticity),
                                  weights, traces)


BACKEND = EventBackend("float32")
