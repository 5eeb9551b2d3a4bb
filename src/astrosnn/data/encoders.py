"""Spike encoders: NALSM's Bernoulli rate code for images, 1-ms binning of N-MNIST events."""

from __future__ import annotations

import numpy as np
import torch

from astrosnn.errors import AstrosnnError

SENSOR = 34
CHANNELS = 2 * SENSOR * SENSOR


def rate_probabilities(images: np.ndarray, global_max: float | None = None) -> tuple[np.ndarray, float]:
    """Pixel / image pixel-sum / global max (over this set, or `global_max`): per-pixel spike probability.

    Returns (p, max_used) with p float32 (N, D) in [0, 1]; a blank image gives p = 0 everywhere.
    """
    x = np.asarray(images)
    if x.ndim < 2 or x.shape[0] == 0:
        raise AstrosnnError(f"images must have shape (N, ...) with N > 0, got {x.shape}")
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    if not np.isfinite(x).all() or (x < 0).any():
        raise AstrosnnError("images must be finite and non-negative")
    sums = x.sum(axis=1, keepdims=True)
    norm = np.divide(x, sums, out=np.zeros_like(x), where=sums > 0)
    used = float(norm.max()) if global_max is None else float(global_max)
    if not np.isfinite(used) or used <= 0:
        raise AstrosnnError(f"global max must be a positive finite number, got {used}")
    return np.clip(norm / np.float32(used), 0.0, 1.0), used


def bernoulli_spikes(probs, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, D) probabilities -> bool (B, steps, D): each ms a spike with probability p (u < p, u ~ U[0,1))."""
    p = torch.as_tensor(probs, dtype=torch.float32)
    if p.ndim != 2:
        raise AstrosnnError(f"probs must have shape (B, D), got {tuple(p.shape)}")
    if steps < 1:
        raise AstrosnnError(f"steps must be >= 1, got {steps}")
    if torch.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise AstrosnnError("probs must lie in [0, 1]")
    device = generator.device if generator is not None else p.device
    u = torch.rand((p.shape[0], steps, p.shape[1]), generator=generator, device=device)
    return u < p.to(device)[:, None, :]


def bin_events(events: list[np.ndarray], steps: int = 250, start_ms: int = 0) -> torch.Tensor:
    """N-MNIST events -> bool (B, steps, 2*34*34) frames of 1 ms (t_us/1000 rounded), first `steps` ms
    from `start_ms`; channel = p*34*34 + y*34 + x; several events in one bin collapse to one spike."""
    if steps < 1:
        raise AstrosnnError(f"steps must be >= 1, got {steps}")
    out = np.zeros((len(events), steps, CHANNELS), dtype=bool)
    for b, ev in enumerate(events):
        t = np.rint(ev["t"] / 1000.0).astype(np.int64) - start_ms
        keep = (t >= 0) & (t < steps)
        bad = (ev["x"] < 0) | (ev["x"] >= SENSOR) | (ev["y"] < 0) | (ev["y"] >= SENSOR) | ((ev["p"] != 0) & (ev["p"] != 1))
        if bad.any():
            raise AstrosnnError(f"sample {b}: events need x, y in 0..{SENSOR - 1} and p in {{0, 1}}")
        ch = ev["p"][keep].astype(np.int64) * SENSOR * SENSOR + ev["y"][keep].astype(np.int64) * SENSOR + ev["x"][keep]
        out[b, t[keep], ch] = True
    return torch.from_numpy(out)
