import numpy as np
import pytest

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.kernel_quality import (
    feature_rank,
    firing_rates_hz,
    generalization_rank,
    jitter_events,
    kernel_quality,
    kernel_quality_from_features,
    mean_firing_rate_hz,
    noisy_images,
    rate_summary,
    rescaled_kernel_quality,
    sample_per_class,
    separation_rank,
    silent_neuron_fraction,
    silent_sample_count,
)


def test_ranks_of_known_matrices():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 2)), rng.normal(size=(2, 8))
    assert feature_rank(a @ b) == 2
    assert separation_rank(rng.normal(size=(20, 8))) == 8
    assert generalization_rank(np.ones((20, 8))) == 1
    with pytest.raises(AstrosnnError, match="2-D"):
        feature_rank(np.zeros(4))


def test_sample_per_class_counts():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    idx = sample_per_class(labels, 5, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [5, 3, 5]
    assert len(set(idx.tolist())) == len(idx)


def test_kernel_quality_from_features_separates_sp_and_ap():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 10)
    clean = rng.poisson(3.0, size=(40, 60)).astype(float)  # distinct responses: full column rank 40
    noisy = np.repeat(rng.poisson(3.0, size=(4, 60)), 10, axis=0).astype(float)  # one response per class
    kq = kernel_quality_from_features(clean, noisy, labels, per_class=5, resamples=3)
    assert kq.separation_rank == 20 and kq.generalization_rank == 4
    assert kq.difference == 16 and kq.n_samples == 20 and kq.n_neurons == 60
    with pytest.raises(AstrosnnError, match="must match"):
        kernel_quality_from_features(clean, noisy[:-1], labels)


def test_noisy_images_clip_and_zero_noise():
    img = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert np.array_equal(noisy_images(img, 0.0), img)
    noisy = noisy_images(np.repeat(img, 200, axis=0), 125.0, np.random.default_rng(0))
    assert noisy.dtype == np.uint8 and noisy.min() == 0 and noisy.max() == 255
    assert noisy[:, 0, 1].std() > 50
    with pytest.raises(AstrosnnError, match="std"):
        noisy_images(img, -1.0)


def test_jitter_events_shifts_each_recording_by_one_amount():
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])
    ev = np.zeros(5, dtype=dtype)
    ev["t"] = [100_000, 110_000, 120_000, 130_000, 140_000]
    (out,) = jitter_events([ev], std_ms=10.0, rng=np.random.default_rng(3))
    shifts = out["t"] - ev["t"]
    assert len(set(shifts.tolist())) == 1 and shifts[0] != 0


def test_kernel_quality_driver_with_a_toy_transform():
    rng = np.random.default_rng(0)
    images = np.repeat(rng.integers(0, 256, size=(3, 4, 4), dtype=np.uint8), 6, axis=0)
    labels = np.repeat(np.arange(3), 6)
    kq = kernel_quality(lambda x: x.reshape(len(x), -1).astype(float), images, labels, per_class=6,
                        noise_std=125.0, resamples=2)
    assert kq.separation_rank == 3  # identical images within a class
    assert kq.generalization_rank > 3  # noise makes every copy different


def test_firing_rate_helpers():
    counts = np.array([[5.0, 0.0, 10.0], [15.0, 0.0, 10.0], [0.0, 0.0, 0.0]])
    # neuron 0: 20 spikes over 3 samples of 0.25 s = 26.7 Hz; neuron 2 likewise; neuron 1 silent
    np.testing.assert_allclose(firing_rates_hz(counts, 250.0), [80 / 3, 0.0, 80 / 3])
    assert mean_firing_rate_hz(counts, 250.0) == pytest.approx(160 / 9)
    assert silent_neuron_fraction(counts) == pytest.approx(1 / 3)
    assert silent_sample_count(counts) == 1
    s = rate_summary(counts, 250.0)
    assert s["silent_samples"] == 1 and s["max_hz"] == pytest.approx(80 / 3)
    with pytest.raises(AstrosnnError, match="duration"):
        firing_rates_hz(counts, 0)


def test_rescaled_kernel_quality():
    assert rescaled_kernel_quality(994.5, 127.5, (558.1, 994.5), (127.5, 993.3)) == pytest.approx(1.0)
    assert rescaled_kernel_quality(558.1, 993.3, (558.1, 994.5), (127.5, 993.3)) == pytest.approx(-1.0)
