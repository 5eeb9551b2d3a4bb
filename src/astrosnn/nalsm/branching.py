"""Branching factor with the NALSM paper's estimator (spec nalsm.md §5).

For each liquid neuron n and each of its spikes at time t inside the window (t - delta >= start,
t + delta < stop): ancestors = spikes of n's presynaptic liquid neurons in [t - delta, t - 1],
descendants = spikes of n's postsynaptic liquid neurons in [t + 1, t + delta];
event ratio = descendants / max(ancestors, 1). Neuron BF = mean over its events, sample BF = nanmean over
neurons, reported BF = mean over samples. Only liquid neurons and liquid->liquid synapses count.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.topology import Network, adjacency


def _as_numpy(spikes: torch.Tensor | np.ndarray, n_liquid: int) -> np.ndarray:
    arr = spikes.detach().cpu().numpy() if isinstance(spikes, torch.Tensor) else np.asarray(spikes)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] < n_liquid:
        raise AstrosnnError(f"spikes must have shape (batch, time, >= {n_liquid}), got {arr.shape}")
    return arr[:, :, :n_liquid] != 0


def branching_factor_per_sample(
    spikes: torch.Tensor | np.ndarray,
    network: Network,
    *,
    window: tuple[int, int] = (25, 225),
    delta: int = 4,
) -> np.ndarray:
    """Branching factor of each sample (B,); NaN for a sample without events in the window."""
    n = network.n_liquid
    raster = _as_numpy(spikes, n)
    start, stop = window
    if delta < 1 or start < 0 or stop - start <= 2 * delta:
        raise AstrosnnError(f"branching window {window} is too short for delta={delta}")
    if raster.shape[1] < stop:
        raise AstrosnnError(f"spike raster has {raster.shape[1]} steps; the window needs {stop}")
    pre, post = adjacency(network)
    # adj[j, i] = number of synapses j -> i
    adj = sp.csr_matrix((np.ones(pre.shape[0], np.float64), (pre, post)), shape=(n, n))
    t_first, t_last = start + delta, stop - delta  # event times t in [t_first, t_last)
    out = np.full(raster.shape[0], np.nan)
    for b in range(raster.shape[0]):
        s = raster[b].astype(np.float64)  # (T, N)
        csum = np.vstack([np.zeros((1, n)), np.cumsum(s, axis=0)])  # csum[t] = sum of s[:t]
        times = np.arange(t_first, t_last)
        past = csum[times] - csum[times - delta]  # spikes in [t - delta, t - 1]
        future = csum[times + delta + 1] - csum[times + 1]  # spikes in [t + 1, t + delta]
        ancestors = np.asarray(adj.T.dot(past.T)).T  # (len(times), N): sum over pre j of n
        descendants = np.asarray(adj.dot(future.T)).T  # sum over post k of n
        events = s[times] > 0
        ratio = np.where(events, descendants / np.maximum(ancestors, 1.0), 0.0)
        n_events = events.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_neuron = ratio.sum(0) / n_events
        if n_events.any():
            out[b] = np.nanmean(per_neuron)
    return out


def branching_factor(
    spikes: torch.Tensor | np.ndarray,
    network: Network,
    *,
    window: tuple[int, int] = (25, 225),
    delta: int = 4,
) -> float:
    """The paper's branching factor: mean over samples of branching_factor_per_sample (NaN samples skipped;
    NaN if no sample has an event)."""
    return mean_branching_factor(branching_factor_per_sample(spikes, network, window=window, delta=delta))


def mean_branching_factor(per_sample: np.ndarray) -> float:
    """Mean over samples, NaN samples skipped; NaN if no sample has an event."""
    return float(np.nanmean(per_sample)) if np.isfinite(per_sample).any() else float("nan")
