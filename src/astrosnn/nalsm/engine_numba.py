"""The "fast" NALSM backend: numba, one compiled loop per sample, event-driven plasticity.

It computes exactly what the reference backend computes, in the same float32 operations and the same
summation order, so spikes, weights, traces and the astrocyte agree bit for bit:
- synaptic input: synapses are kept sorted by (pre, post); walking the pre neurons in order and scattering
  W * exp(-delta) to their targets adds, for every post neuron, the same terms in the same order as the
  reference's index_add_ over the synapse list; pre neurons whose kernel is exactly 0 (delta >= 88, see
  `kernel_table`) are skipped, which adds nothing either way;
- STDP: a synapse changes only if its pre or its post neuron spiked this step (otherwise dW = 0 exactly),
  so only the synapses of spiking neurons are visited, each once, with the reference's formula.
Samples of a batch run in parallel threads (numba prange); phase 1 runs blocks of samples in one call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from numba import njit, prange

from astrosnn.core.astrocyte import density_mask
from astrosnn.core.lif import kernel_table
from astrosnn.nalsm.topology import Network, block_bounds

RULE_CODES = {"none": 0, "stdp": 1, "astro": 2}


class Prepared(NamedTuple):
    """Network arrays in the layout the compiled loop wants: slots sorted by (pre, post)."""

    order: np.ndarray  # int64 (S,) network synapse index of each slot
    post: np.ndarray  # int32 (S,) post neuron of each slot
    out_ptr: np.ndarray  # int64 (M + 1,) slots of pre j are out_ptr[j]:out_ptr[j+1]
    in_ptr: np.ndarray  # int64 (N + 1,) incoming synapses of post i are in_slot[in_ptr[i]:in_ptr[i+1]]
    in_slot: np.ndarray  # int64 (S,)
    in_pre: np.ndarray  # int32 (S,) pre neuron of in_slot[q]


def prepare(network: Network) -> Prepared:
    pre, post = network.pre, network.post
    m, n = network.n_neurons, network.n_liquid
    order = np.lexsort((post, pre))
    pre_s, post_s = pre[order], post[order]
    out_ptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(pre_s, minlength=m), out=out_ptr[1:])
    in_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(post_s, minlength=n), out=in_ptr[1:])
    in_slot = np.lexsort((pre_s, post_s))
    return Prepared(order=order, post=post_s.astype(np.int32), out_ptr=out_ptr, in_ptr=in_ptr,
                    in_slot=in_slot.astype(np.int64), in_pre=pre_s[in_slot].astype(np.int32))


@njit(cache=True)
def _run_sample(post, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n_exc, n,
                w, inputs, x, counts, astro_trace, raster, record, rule, fparams, iparams):
    """One sample from a reset state; w (slot order), x, counts, astro_trace, raster updated in place."""
    tau_v, v_thr, v_reset, in_current = fparams[0], fparams[1], fparams[2], fparams[3]
    eta, a, d = fparams[4], fparams[5], fparams[6]
    a_tau, a_w, a_b, a_val, decay = fparams[7], fparams[8], fparams[9], fparams[10], fparams[11]
    refractory, delta_init, delta_max = iparams[0], iparams[1], iparams[2]
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
                        kind = 0 if j < n_exc else (1 if j < n else 2)
                        if kind == 1:
                            nw = w[s] + (eta * acausal - dep * causal)
                        else:
                            nw = w[s] + (eta * causal - dep * acausal)
                        w[s] = min(max(nw, bounds[kind, 0]), bounds[kind, 1])
                kind = 0 if i < n_exc else (1 if i < n else 2)
                lo, hi = bounds[kind, 0], bounds[kind, 1]
                for s in range(out_ptr[i], out_ptr[i + 1]):  # as pre: targets that did not spike
                    p = post[s]
                    if not spk[p]:
                        acausal = x[p]
                        if kind == 1:
                            nw = w[s] + (eta * acausal - dep * zero)
                        else:
                            nw = w[s] + (eta * zero - dep * acausal)
                        w[s] = min(max(nw, lo), hi)
        for i in range(m):  # 9
            x[i] = d * (x[i] + a * (one if spk[i] else zero))
        seen_liquid = 0  # 10
        seen_input = 0
        for k in range(nf):
            i = fired[k]
            if mask[i]:
                if i < n:
                    seen_liquid += 1
                else:
                    seen_input += 1
        drive = np.float32(seen_liquid - seen_input)
        a_val = a_val + (a_w * drive + a_b - a_val) / a_tau
        if decay != one:  # 11
            eta = eta * decay
            a_val = a_val * decay
            a_w = a_w * decay
            a_b = a_b * decay
        astro_trace[t] = a_val


@njit(cache=True, parallel=True)
def _run_batch(post, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n_exc, n,
               w, inputs, x, counts, astro_trace, raster, record, rule, fparams, iparams):
    for b in prange(w.shape[0]):
        _run_sample(post, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n_exc, n,
                    w[b], inputs[b], x[b], counts[b], astro_trace[b], raster[b], record, rule, fparams, iparams)


@njit(cache=True)
def _run_sequence(post, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n_exc, n,
                  w, samples, x, rule, fparams, iparams):
    """Phase 1: samples one after another, weights w (S,) and traces x (M,) carried, the rest reset."""
    counts = np.zeros(n, np.float32)
    astro_trace = np.zeros(samples.shape[1], np.float32)
    raster = np.zeros((1, 1), np.bool_)
    for k in range(samples.shape[0]):
        _run_sample(post, out_ptr, in_ptr, in_slot, in_pre, bounds, table, mask, n_exc, n,
                    w, samples[k], x, counts, astro_trace, raster, False, rule, fparams, iparams)


def _setup(network: Network, plasticity, prepared: Prepared | None):
    from astrosnn.nalsm.engine import INPUT_CURRENT, LIF

    prep = prepare(network) if prepared is None else prepared
    mask = density_mask(network.n_liquid, network.n_input, plasticity.astro_density, plasticity.seed)
    f = np.array([LIF.tau_v, LIF.v_thr, LIF.v_reset, INPUT_CURRENT, plasticity.eta_p, plasticity.trace_a,
                  plasticity.trace_decay, plasticity.astro_tau, plasticity.astro_weight, plasticity.astro_bias,
                  plasticity.astro_init, plasticity.rate_decay], dtype=np.float32)
    i = np.array([LIF.refractory, LIF.delta_init, LIF.delta_max], dtype=np.int64)
    common = (prep.post, prep.out_ptr, prep.in_ptr, prep.in_slot, prep.in_pre, block_bounds(),
              kernel_table(LIF).numpy(), mask, network.n_exc, network.n_liquid)
    return prep, common, RULE_CODES[plasticity.rule], f, i


def fast_backend(network: Network, input_spikes: torch.Tensor, plasticity, weights: torch.Tensor,
                 record: bool, traces: torch.Tensor | None, prepared: Prepared | None = None):
    """Same contract as the reference backend (see engine.simulate)."""
    from astrosnn.nalsm.engine import SimResult

    prep, common, rule, fparams, iparams = _setup(network, plasticity, prepared)
    batch, steps, _ = input_spikes.shape
    m, n = network.n_neurons, network.n_liquid
    w = np.ascontiguousarray(weights.numpy()[:, prep.order], dtype=np.float32)
    x = np.zeros((batch, m), np.float32) if traces is None else np.array(traces.numpy(), np.float32, order="C")
    counts = np.zeros((batch, n), np.float32)
    astro = np.zeros((batch, steps), np.float32)
    raster = np.zeros((batch, steps, m) if record else (batch, 1, 1), np.bool_)
    inputs = np.ascontiguousarray(input_spikes.numpy())
    _run_batch(*common, w, inputs, x, counts, astro, raster, record, rule, fparams, iparams)
    out = np.empty_like(w)
    out[:, prep.order] = w
    return SimResult(spikes=torch.from_numpy(raster) if record else None, counts=torch.from_numpy(counts),
                     weights=torch.from_numpy(out), astro=torch.from_numpy(astro), traces=torch.from_numpy(x))


def fast_sequence(network: Network, samples: np.ndarray, plasticity, weights: np.ndarray, traces: np.ndarray,
                  prepared: Prepared | None = None) -> None:
    """Phase 1 over a block of samples (K, T, n_in) bool; weights (S,, network order) and traces (M,)
    are updated in place."""
    prep, common, rule, fparams, iparams = _setup(network, plasticity, prepared)
    w = np.ascontiguousarray(weights[prep.order])
    _run_sequence(*common, w, np.ascontiguousarray(samples), traces, rule, fparams, iparams)
    weights[prep.order] = w
