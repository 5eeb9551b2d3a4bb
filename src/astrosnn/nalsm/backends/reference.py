"""The "reference" backend: plain torch, batched over samples, straight from the spec (nalsm.md §1.1, §3, §4).

Per ms, in this order: 1 spikes  2 reset  3 record/count  4 synaptic response restart  5 v update (synaptic
+ input current)  6 delta += 1  7 refractory  8 STDP (S of this step, traces of the previous step) + clip
9 traces  10 astrocyte  11 multiplicative decay of eta_p, A, w_astro, b_astro (rate_decay per ms).
"""

from __future__ import annotations

from collections.abc import Iterable

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


class ReferenceBackend:
    """`astrosnn.nalsm.backends.Backend` in plain torch."""

    def run_batch(self, network: Network, input_spikes: torch.Tensor, plasticity: PlasticityConfig,
                  weights: torch.Tensor, record: bool, traces: torch.Tensor | None) -> SimulationResult:
        batch, steps, _ = input_spikes.shape
        n, m = network.n_liquid, network.n_neurons
        pre = torch.from_numpy(network.pre)
        post = torch.from_numpy(network.post)
        low, high = (torch.from_numpy(b) for b in clip_bounds(network))
        synapses = Synapses(pre, post, torch.from_numpy(network.pre_kind == PRE_INH), low, high)
        mask = torch.from_numpy(density_mask(n, network.n_input, plasticity.astro_density, plasticity.seed))
        table = synaptic_response_table(LIF)
        f32 = torch.float32

        state = lif_init(batch, m, LIF)
        x = torch.zeros(batch, m, dtype=f32) if traces is None else traces.to(f32).clone()
        astro = astrocyte_init(batch, plasticity.astrocyte)
        eta = torch.full((batch,), plasticity.eta_p, dtype=f32)
        counts = torch.zeros(batch, n, dtype=f32)
        raster = torch.zeros(batch, steps, m, dtype=torch.bool) if record else None
        astro_trace = torch.zeros(batch, steps, dtype=f32)
        w = weights

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
        w = weights.unsqueeze(0)
        x = torch.zeros(1, network.n_neurons, dtype=torch.float32) if traces is None else \
            traces.to(torch.float32).unsqueeze(0)
        for sample in samples:
            result = self.run_batch(network, sample.unsqueeze(0), plasticity, w, False, x)
            w, x = result.weights, result.traces
        return w[0].clone(), x[0].clone()


BACKEND = ReferenceBackend()
