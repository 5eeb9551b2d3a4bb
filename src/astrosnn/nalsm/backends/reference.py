"""The "reference" backend: plain torch, batched over samples, straight from the spec (nalsm.md §1.1, §3, §4).

Per ms, in this order: 1 spikes  2 reset  3 record/count  4 synaptic response restart  5 v update (synaptic
+ input current)  6 delta += 1  7 refractory  8 STDP (S of this step, traces of the previous step) + clip
9 traces  10 astrocyte  11 multiplicative decay of eta_p, A, w_astro, b_astro (rate_decay per ms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import NamedTuple

import torch

from astrosnn.core.astrocyte import astrocyte_decay, astrocyte_init, astrocyte_step, density_mask
from astrosnn.core.lif import (
    lif_fire,
    lif_init,
    lif_integrate,
    synaptic_current,
    synaptic_response_table,
)
from astrosnn.core.stdp import Synapses, stdp_step
from astrosnn.core.traces import trace_step
from astrosnn.nalsm.params import INPUT_CURRENT, LIF, PlasticityConfig, SimulationResult
from astrosnn.nalsm.topology import PRE_INH, Network, clip_bounds


class _Prepared(NamedTuple):
    """The network's tensors on the simulation device (built once per batch or per phase-1 sequence)."""

    pre: torch.Tensor
    post: torch.Tensor
    synapses: Synapses
    mask: torch.Tensor
    table: torch.Tensor


class ReferenceBackend:
    """`astrosnn.nalsm.backends.Backend` in plain torch, on ``device`` (None: the CPU).

    On CUDA (the ``cuda`` backend) the per-synapse sums are atomic adds in no fixed order, so spikes can
    differ from the CPU's by float32 rounding: a stated tolerance, like ``event``; on the CPU it is the
    bit-exact reference."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def _prepare(self, network: Network, plasticity: PlasticityConfig) -> _Prepared:
        dev = self.device
        pre = torch.from_numpy(network.pre).to(dev)
        post = torch.from_numpy(network.post).to(dev)
        low, high = (torch.from_numpy(b).to(dev) for b in clip_bounds(network))
        synapses = Synapses(pre, post, torch.from_numpy(network.pre_kind == PRE_INH).to(dev), low, high)
        mask = torch.from_numpy(density_mask(network.n_liquid, network.n_input, plasticity.astro_density,
                                             plasticity.seed)).to(dev)  # fmt: skip
        return _Prepared(pre, post, synapses, mask, synaptic_response_table(LIF).to(dev))

    def run_batch(self, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
                  weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        result = self._run(self._prepare(network, plasticity), network, input_spikes, plasticity, weights,
                           record, traces)  # fmt: skip
        if self.device.type == "cpu":
            return result
        return SimulationResult(**{f.name: None if (t := getattr(result, f.name)) is None else t.cpu()
                                   for f in dataclasses.fields(result)})  # fmt: skip

    def _run(self, prep: _Prepared, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
             weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        batch, steps, _ = input_spikes.shape
        n, m = network.n_liquid, network.n_neurons
        dev = self.device
        pre, post, synapses, mask, table = prep
        input_spikes = input_spikes.to(dev)
        f32 = torch.float32

        state = lif_init(batch, m, LIF, device=dev)
        x = torch.zeros(batch, m, dtype=f32, device=dev) if traces is None else traces.to(dev, f32).clone()
        astro = astrocyte_init(batch, plasticity.astrocyte, device=dev)
        eta = torch.full((batch,), plasticity.eta_p, dtype=f32, device=dev)
        counts = torch.zeros(batch, n, dtype=f32, device=dev)
        raster = torch.zeros(batch, steps, m, dtype=torch.bool, device=dev) if record else None
        astro_trace = torch.zeros(batch, steps, dtype=f32, device=dev)
        w = weights.to(dev)

        for t in range(steps):
            spikes, state = lif_fire(state, LIF)  # 1, 2, 4
            if raster is not None:  # 3
                raster[:, t] = spikes
            counts += spikes[:, :n]
            current = synaptic_current(w, table[state.delta], pre, post, m)  # 5
            current[:, n:] += input_spikes[:, t].to(f32) * INPUT_CURRENT  # input neurons: current 100
            state = lif_integrate(state, spikes, current, LIF)  # 5, 6, 7
            if plasticity.rule != "none":  # 8
                depression = astro.value if plasticity.rule == "astro" else eta
                w = stdp_step(w, spikes, x, synapses, eta, depression)
            x = trace_step(x, spikes, plasticity.trace_a, plasticity.trace_decay)  # 9
            seen = spikes & mask
            astro = astrocyte_step(astro, seen[:, :n].sum(1), seen[:, n:].sum(1), plasticity.astro_tau)  # 10
            if plasticity.rate_decay != 1.0:  # 11
                eta = eta * plasticity.rate_decay
                astro = astrocyte_decay(astro, plasticity.rate_decay)
            astro_trace[:, t] = astro.value
        return SimulationResult(spikes=raster, counts=counts, weights=w, astro=astro_trace, traces=x)

    def run_sequence(self, network: Network, samples: Iterable[torch.Tensor], plasticity: PlasticityConfig,
                     weights: torch.Tensor, traces: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        prep = self._prepare(network, plasticity)
        w = weights.to(self.device).unsqueeze(0)
        x = torch.zeros(1, network.n_neurons, dtype=torch.float32, device=self.device) if traces is None else \
            traces.to(self.device, torch.float32).unsqueeze(0)
        for sample in samples:
            result = self._run(prep, network, sample.unsqueeze(0), plasticity, w, False, x)
            w, x = result.weights, result.traces
        return w[0].cpu().clone(), x[0].cpu().clone()


BACKEND = ReferenceBackend()
