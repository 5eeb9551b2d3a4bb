"""The "fast" backend: numba, one compiled loop per sample, event-driven plasticity.

It computes exactly what the reference backend computes, in the same float32 operations and the same
summation order, so spikes, weights, traces and the astrocyte agree bit for bit:
- synaptic input: synapses are kept in slots sorted by (pre, post); walking the pre neurons in order and
  scattering W * exp(-delta) to their targets adds, for every post neuron, the same terms in the same order as
  the reference's index_add_ over the synapse list; pre neurons whose response is exactly 0 (delta >= 88, see
  `synaptic_response_table`) are skipped, which adds nothing either way;
- STDP: a synapse changes only if its pre or its post neuron spiked this step (otherwise dW = 0 exactly),
  so only the synapses of spiking neurons are visited, each once, with the reference's formula and the
  synapse's own kind (`Network.pre_kind`).
Samples of a batch run in parallel threads (numba prange); phase 1 runs blocks of samples in one call.
The slot layout is computed once per network (`Network.memo`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from numba import njit, prange

from astrosnn.core.astrocyte import density_mask
from astrosnn.core.lif import synaptic_response_table
from astrosnn.nalsm.backends.astrocyte_numba import astrocyte_ms
from astrosnn.nalsm.params import INPUT_CURRENT, LIF, PlasticityConfig, SimulationResult
from astrosnn.nalsm.topology import PRE_INH, Network, block_bounds

RULE_CODES = {"none": 0, "stdp": 1, "astro": 2}
PHASE1_BLOCK = 64  # phase-1 samples per compiled call


class SlotLayout(NamedTuple):
    """The network's synapses in the order the compiled loop wants: slots sorted by (pre, post)."""

    order: np.ndarray  # int64 (S,) network synapse index of each slot
    in_order: bool  # the network's synapse list is already in slot order (order == arange)
    post: np.ndarray  # int32 (S,) post neuron of each slot
    kind: np.ndarray  # int8 (S,) pre kind of each slot (PRE_EXC / PRE_INH / PRE_INPUT)
    out_ptr: np.ndarray  # int64 (M + 1,) slots of pre j are out_ptr[j]:out_ptr[j+1]
    in_ptr: np.ndarray  # int64 (N + 1,) incoming synapses of post i are in_slot[in_ptr[i]:in_ptr[i+1]]
    in_slot: np.ndarray  # int64 (S,)
    in_pre: np.ndarray  # int32 (S,) pre neuron of in_slot[q]


def slot_layout(network: Network) -> SlotLayout:
    pre, post = network.pre, network.post
    m, n = network.n_neurons, network.n_liquid
    order = np.lexsort((post, pre))
    pre_s, post_s = pre[order], post[order]
    out_ptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(pre_s, minlength=m), out=out_ptr[1:])
    in_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(post_s, minlength=n), out=in_ptr[1:])
    in_slot = np.lexsort((pre_s, post_s))
    return SlotLayout(order=order, in_order=bool(np.array_equal(order, np.arange(len(order)))),
                      post=post_s.astype(np.int32), kind=network.pre_kind[order].astype(np.int8),
                      out_ptr=out_ptr, in_ptr=in_ptr, in_slot=in_slot.astype(np.int64),
                      in_pre=pre_s[in_slot].astype(np.int32))


class Dynamics(NamedTuple):
    """Scalar parameters of the compiled loop (float32 as the reference computes; counters int64)."""

    tau_v: np.float32
    v_thr: np.float32
    v_reset: np.float32
    input_current: np.float32
    eta_p: np.float32
    trace_a: np.float32
    trace_decay: np.float32
    astro_tau: np.float32
    astro_weight: np.float32
    astro_bias: np.float32
    astro_init: np.float32
    rate_decay: np.float32
    refractory: np.int64
    delta_init: np.int64
    delta_max: np.int64
    rule: np.int64  # RULE_CODES


def dynamics(plasticity: PlasticityConfig) -> Dynamics:
    f = np.float32
    return Dynamics(f(LIF.tau_v), f(LIF.v_thr), f(LIF.v_reset), f(INPUT_CURRENT), f(plasticity.eta_p),
                    f(plasticity.trace_a), f(plasticity.trace_decay), f(plasticity.astro_tau),
                    f(plasticity.astro_weight), f(plasticity.astro_bias), f(plasticity.astro_init),
                    f(plasticity.rate_decay), np.int64(LIF.refractory), np.int64(LIF.delta_init),
                    np.int64(LIF.delta_max), np.int64(RULE_CODES[plasticity.rule]))


@njit(cache=True)
def _sample_numba(post, kind, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n,
                  w, inputs, x, counts, astro_trace, raster, record, p):
    """One sample from a reset state; w (slot order), x, counts, astro_trace, raster updated in place."""
    tau_v, v_thr, v_reset, in_current = p.tau_v, p.v_thr, p.v_reset, p.input_current
    eta, a, d = p.eta_p, p.trace_a, p.trace_decay
    a_tau, a_w, a_b, a_val, decay = p.astro_tau, p.astro_weight, p.astro_bias, p.astro_init, p.rate_decay
    refractory, delta_init, delta_max, rule = p.refractory, p.delta_init, p.delta_max, p.rule
    inh = np.int8(PRE_INH)
    m = x.shape[0]
    steps = inputs.shape[0]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    v = np.zeros(m, np.float32)
    ref = np.zeros(m, np.int32)
    delta = np.full(m, delta_init, np.int32)
    u = np.zeros(m, np.float32)
    cur = np.zeros(m, np.float32)
    spk = np.zeros(m, np.bool_)
    fired = np.zeros(m, np.int64)
    for t in range(steps):
        nf = 0
        for i in range(m):  # 1, 2, 4
            s_ = v[i] >= v_thr and ref[i] == 0
            spk[i] = s_
            if s_:
                v[i] = v_reset
                delta[i] = 0
                fired[nf] = i
                nf += 1
            u[i] = table[delta[i]]
        for k in range(nf):  # 3
            i = fired[k]
            if record:
                raster[t, i] = True
            if i < n:
                counts[i] += one
        for i in range(m):  # 5
            cur[i] = zero
        for j in range(m):
            uj = u[j]
            if uj != zero:
                for s in range(out_ptr[j], out_ptr[j + 1]):
                    cur[post[s]] += w[s] * uj
        for k in range(inputs.shape[1]):
            if inputs[t, k]:
                cur[n + k] += in_current
        for i in range(m):  # 5, 6, 7
            v[i] = (v[i] - v[i] / tau_v) + cur[i]
            if delta[i] < delta_max:
                delta[i] += 1
            if spk[i]:
                ref[i] = refractory
            elif ref[i] > 0:
                ref[i] -= 1
        if rule != 0:  # 8: dW = eta * potentiated - dep * depressed, then clip
            dep = a_val if rule == 2 else eta
            for k in range(nf):
                i = fired[k]
                if i < n:  # as post: every incoming synapse (causal pairing, plus acausal if pre spiked too)
                    xi = x[i]
                    for q in range(in_ptr[i], in_ptr[i + 1]):
                        s = in_slot[q]
                        j = in_pre[q]
                        causal = x[j]
                        acausal = xi if spk[j] else zero
                        ks = kind[s]
                        if ks == inh:
                            nw = w[s] + (eta * acausal - dep * causal)
                        else:
                            nw = w[s] + (eta * causal - dep * acausal)
                        w[s] = min(max(nw, bounds[ks, 0]), bounds[ks, 1])
                for s in range(out_ptr[i], out_ptr[i + 1]):  # as pre: targets that did not spike
                    p_ = post[s]
                    if not spk[p_]:
                        acausal = x[p_]
                        ks = kind[s]
                        if ks == inh:
                            nw = w[s] + (eta * acausal - dep * zero)
                        else:
                            nw = w[s] + (eta * zero - dep * acausal)
                        w[s] = min(max(nw, bounds[ks, 0]), bounds[ks, 1])
        for i in range(m):  # 9
            x[i] = d * (x[i] + a * (one if spk[i] else zero))
        a_val, a_w, a_b, eta = astrocyte_ms(fired, nf, mask, n, a_val, a_w, a_b, a_tau, eta, decay)  # 10, 11
        astro_trace[t] = a_val


@njit(cache=True, parallel=True)
def _batch_numba(post, kind, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n,
                 w, inputs, x, counts, astro_trace, raster, record, p):
    for b in prange(w.shape[0]):
        _sample_numba(post, kind, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n,
                      w[b], inputs[b], x[b], counts[b], astro_trace[b], raster[b], record, p)


@njit(cache=True)
def _sequence_numba(post, kind, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n, w, samples, x, p):
    """Phase 1: samples one after another, weights w (S,) and traces x (M,) carried, the rest reset."""
    counts = np.zeros(n, np.float32)
    astro_trace = np.zeros(samples.shape[1], np.float32)
    raster = np.zeros((1, 1), np.bool_)
    for k in range(samples.shape[0]):
        _sample_numba(post, kind, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n,
                      w, samples[k], x, counts, astro_trace, raster, False, p)


def _network_arrays(network: Network, plasticity: PlasticityConfig) -> tuple[SlotLayout, tuple]:
    """The slot layout (memoised on the network) and the arrays every compiled entry point takes first."""
    layout = network.memo("fast-backend-slots", slot_layout)
    mask = density_mask(network.n_liquid, network.n_input, plasticity.astro_density, plasticity.seed)
    return layout, (layout.post, layout.kind, layout.out_ptr, layout.in_ptr, layout.in_slot, layout.in_pre,
                    block_bounds(), synaptic_response_table(LIF).numpy(), mask, network.n_liquid)


def _to_slots(layout: SlotLayout, weights: np.ndarray) -> np.ndarray:
    """A float32 C-contiguous copy of weights (..., S) in slot order."""
    if layout.in_order:
        return np.array(weights, dtype=np.float32, order="C")
    return np.ascontiguousarray(weights[..., layout.order], dtype=np.float32)


def _from_slots(layout: SlotLayout, w: np.ndarray) -> np.ndarray:
    if layout.in_order:
        return w
    out = np.empty_like(w)
    out[..., layout.order] = w
    return out


class BatchBuffers(NamedTuple):
    """The numba kernels' in/out arrays for one `run_batch` (weights in slot order, float32 traces)."""

    w: np.ndarray  # (batch, synapses), slot order
    inputs: np.ndarray  # (batch, steps, n_input) input spikes, C order
    x: np.ndarray  # (batch, neurons) STDP traces: zeros, or the given ones
    counts: np.ndarray  # (batch, n_liquid)
    astro: np.ndarray  # (batch, steps) astrocyte trace
    raster: np.ndarray  # (batch, steps, neurons) when recording, else a (batch, 1, 1) placeholder

    @classmethod
    def allocate(cls, layout: SlotLayout, network: Network, input_spikes: torch.Tensor, weights: torch.Tensor,
                 record: bool, traces: torch.Tensor | None) -> BatchBuffers:  # fmt: skip
        batch, steps, _ = input_spikes.shape
        m, n = network.n_neurons, network.n_liquid
        x = np.zeros((batch, m), np.float32) if traces is None else np.array(traces.numpy(), np.float32, order="C")
        return cls(_to_slots(layout, weights.numpy()), np.ascontiguousarray(input_spikes.numpy()), x,
                   np.zeros((batch, n), np.float32), np.zeros((batch, steps), np.float32),
                   np.zeros((batch, steps, m) if record else (batch, 1, 1), np.bool_))  # fmt: skip

    def result(self, layout: SlotLayout, record: bool) -> SimulationResult:
        return SimulationResult(spikes=torch.from_numpy(self.raster) if record else None,
                                counts=torch.from_numpy(self.counts),
                                weights=torch.from_numpy(_from_slots(layout, self.w)),
                                astro=torch.from_numpy(self.astro), traces=torch.from_numpy(self.x))  # fmt: skip


class FastBackend:
    """`astrosnn.nalsm.backends.Backend` compiled with numba."""

    def run_batch(self, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
                  weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        layout, arrays = _network_arrays(network, plasticity)
        buf = BatchBuffers.allocate(layout, network, input_spikes, weights, record, traces)
        _batch_numba(*arrays, buf.w, buf.inputs, buf.x, buf.counts, buf.astro, buf.raster, record,
                     dynamics(plasticity))
        return buf.result(layout, record)

    def run_sequence(self, network: Network, samples: Iterable[torch.Tensor], plasticity: PlasticityConfig,
                     weights: torch.Tensor, traces: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        layout, arrays = _network_arrays(network, plasticity)
        return sequence_in_blocks(_sequence_numba, arrays, layout, network, samples, dynamics(plasticity),
                                  weights, traces)


def sequence_in_blocks(kernel, arrays: tuple, layout: SlotLayout, network: Network, samples: Iterable[torch.Tensor],
                       p: Dynamics, weights: torch.Tensor, traces: torch.Tensor | None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """`Backend.run_sequence` with a compiled ``kernel(*arrays, w, samples, x, p)`` that runs a block of
    samples (K, T, n_in) from weights w (slot order) and traces x, updating both in place: blocks of up to
    PHASE1_BLOCK samples of equal length, the weights and traces carried from block to block (the kernels
    carry nothing else, so any split gives the same numbers). Returns (weights, traces), new tensors."""
    w = _to_slots(layout, weights.numpy())
    x = np.zeros(network.n_neurons, np.float32) if traces is None else \
        np.array(traces.numpy(), dtype=np.float32, order="C")
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            kernel(*arrays, w, np.ascontiguousarray(np.stack(pending)), x, p)
            pending.clear()

    for sample in samples:
        arr = sample.numpy()
        if pending and arr.shape != pending[0].shape:
            flush()
        pending.append(arr)
        if len(pending) == PHASE1_BLOCK:
            flush()
    flush()
    return torch.from_numpy(_from_slots(layout, w)), torch.from_numpy(x)


BACKEND = FastBackend()
