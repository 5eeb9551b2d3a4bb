"""Kernel quality (spec §7.2) and firing-rate diagnostics, as plain functions of liquid features.

Separation rank (SP): the rank of the (neurons x samples) matrix of spike-count vectors of `per_class` random
test samples of every class. Generalisation rank (AP): the same rank for noisy versions of those inputs (MNIST:
pixel Gaussian noise std 125 on the 0..255 scale, clipped; N-MNIST: one random time shift per sample). A good
liquid separates different inputs (high SP) but maps noisy copies of an input close together (low AP), so the
paper scores SP - AP after min-max rescaling of each across the compared models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from astrosnn.errors import AstrosnnError


def _as_matrix(features, what: str) -> np.ndarray:
    x = np.asarray(features.numpy() if hasattr(features, "numpy") else features, dtype=np.float64)
    if x.ndim != 2:
        raise AstrosnnError(f"{what} must be 2-D (samples, neurons), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise AstrosnnError(f"{what} contain NaN or infinite values")
    return x


def feature_rank(features) -> int:
    """numpy.linalg.matrix_rank of a (samples, neurons) feature matrix (the rank of its transpose)."""
    return int(np.linalg.matrix_rank(_as_matrix(features, "features")))


def separation_rank(features) -> int:
    """SP: rank of the liquid's responses to distinct inputs (higher separates better)."""
    return feature_rank(features)


def generalization_rank(noisy_features) -> int:
    """AP: rank of the liquid's responses to noisy inputs (lower generalises better)."""
    return feature_rank(noisy_features)


def sample_per_class(labels, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` random samples of every class (all of a class if it has fewer)."""
    labels = np.asarray(labels)
    if per_class < 1:
        raise AstrosnnError(f"per_class must be >= 1, got {per_class}")
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def noisy_images(images: np.ndarray, std: float = 125.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Images (uint8, 0..255) plus pixel-wise Gaussian noise of standard deviation `std`, clipped to 0..255."""
    if std < 0:
        raise AstrosnnError(f"noise std must be >= 0, got {std}")
    rng = rng or np.random.default_rng(0)
    noisy = np.asarray(images, dtype=np.float64) + rng.normal(0.0, std, size=np.shape(images))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jitter_events(events: list[np.ndarray], std_ms: float = 10.0, rng: np.random.Generator | None = None,
                  span_ms: float = 300.0) -> list[np.ndarray]:
    """N-MNIST noise as in the authors' code: ONE Gaussian time shift per recording (std `std_ms`),
    reflected at 0 and `span_ms`."""
    rng = rng or np.random.default_rng(0)
    out = []
    span_us = span_ms * 1000.0
    for ev in events:
        shifted = ev.copy()
        t = ev["t"].astype(np.float64) + rng.normal(0.0, std_ms) * 1000.0
        t = np.abs(t)
        t = np.where(t > span_us, 2 * span_us - t, t)
        shifted["t"] = np.clip(np.rint(t), 0, None).astype(ev["t"].dtype)
        out.append(shifted[np.argsort(shifted["t"], kind="stable")])
    return out


@dataclass(frozen=True)
class KernelQuality:
    separation_rank: float  # mean over resamplings
    generalization_rank: float
    n_samples: int  # columns of each rank matrix
    n_neurons: int
    resamples: int

    @property
    def difference(self) -> float:
        """Unscaled SP - AP (the paper rescales each across models first; see `rescaled_kernel_quality`)."""
        return self.separation_rank - self.generalization_rank

    def to_dict(self) -> dict:
        return {**asdict(self), "difference": self.difference}


def kernel_quality_from_features(clean, noisy, labels, *, per_class: int = 100, resamples: int = 10,
                                 seed: int = 0) -> KernelQuality:
    """SP and AP averaged over `resamples` random draws of `per_class` samples per class.

    `clean[i]` and `noisy[i]` must be the liquid's responses to input i and to its noisy copy."""
    clean = _as_matrix(clean, "clean features")
    noisy = _as_matrix(noisy, "noisy features")
    labels = np.asarray(labels)
    if clean.shape != noisy.shape or len(labels) != len(clean):
        raise AstrosnnError(f"clean {clean.shape}, noisy {noisy.shape} and labels ({len(labels)},) must match")
    if resamples < 1:
        raise AstrosnnError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    sp, ap, n = [], [], 0
    for _ in range(resamples):
        idx = sample_per_class(labels, per_class, rng)
        n = len(idx)
        sp.append(feature_rank(clean[idx]))
        ap.append(feature_rank(noisy[idx]))
    return KernelQuality(float(np.mean(sp)), float(np.mean(ap)), n, clean.shape[1], resamples)


def kernel_quality(transform: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels, *,
                   per_class: int = 100, noise_std: float = 125.0, resamples: int = 10,
                   seed: int = 0) -> KernelQuality:
    """Driver for image data: pick up to `per_class` samples per class, add pixel noise, run both through
    `transform` (e.g. `NALSM.transform`, images -> spike counts) and measure SP and AP."""
    rng = np.random.default_rng(seed)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise AstrosnnError(f"{len(images)} images but {len(labels)} labels")
    pool = sample_per_class(labels, per_class, rng)
    clean = transform(images[pool])
    noisy = transform(noisy_images(images[pool], noise_std, rng))
    return kernel_quality_from_features(clean, noisy, labels[pool], per_class=per_class,
                                        resamples=resamples, seed=seed)


def rescaled_kernel_quality(sp: float, ap: float, sp_range: tuple[float, float],
                            ap_range: tuple[float, float]) -> float:
    """The paper's score: SP and AP each min-max rescaled over the compared models, then SP - AP."""
    def rescale(v: float, lo_hi: tuple[float, float]) -> float:
        lo, hi = lo_hi
        return 0.0 if hi <= lo else (v - lo) / (hi - lo)

    return rescale(sp, sp_range) - rescale(ap, ap_range)


# ---------------------------------------------------------------- firing rates

def firing_rates_hz(counts, duration_ms: float) -> np.ndarray:
    """Per-neuron mean firing rate (Hz) over samples, from (samples, neurons) spike counts."""
    x = _as_matrix(counts, "spike counts")
    if duration_ms <= 0:
        raise AstrosnnError(f"duration_ms must be > 0, got {duration_ms}")
    if len(x) == 0:
        return np.zeros(x.shape[1])
    return x.mean(axis=0) * (1000.0 / duration_ms)


def mean_firing_rate_hz(counts, duration_ms: float) -> float:
    """Mean firing rate (Hz) over all neurons and samples."""
    rates = firing_rates_hz(counts, duration_ms)
    return float(rates.mean()) if rates.size else 0.0


def silent_neuron_fraction(counts) -> float:
    """Fraction of neurons that never fire on any sample."""
    x = _as_matrix(counts, "spike counts")
    return float((x.sum(axis=0) == 0).mean()) if x.size else 0.0


def silent_sample_count(counts) -> int:
    """Number of samples on which the whole liquid stays silent (the paper's division-by-zero case)."""
    x = _as_matrix(counts, "spike counts")
    return int((x.sum(axis=1) == 0).sum())


def rate_summary(counts, duration_ms: float) -> dict[str, float]:
    rates = firing_rates_hz(counts, duration_ms)
    return {"mean_hz": float(rates.mean()) if rates.size else 0.0,
            "median_hz": float(np.median(rates)) if rates.size else 0.0,
            "max_hz": float(rates.max()) if rates.size else 0.0,
            "silent_neuron_fraction": silent_neuron_fraction(counts),
            "silent_samples": float(silent_sample_count(counts))}
