import numpy as np
import pytest
import torch

from astrosnn.data.encoders import CHANNELS, bernoulli_spikes, bin_events, rate_probabilities
from astrosnn.errors import AstrosnnError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])


def _events(rows):
    return np.array(rows, dtype=EVENT_DTYPE)


def test_rate_probabilities_divides_by_pixel_sum_then_global_max():
    images = np.array([[[1, 3], [0, 0]], [[2, 2], [0, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)
    p, used = rate_probabilities(images)
    assert p.dtype == np.float32 and p.shape == (3, 4)
    assert used == pytest.approx(0.75)
    np.testing.assert_allclose(p[0], [1 / 3, 1, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(p[1], [2 / 3, 2 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(p[2], 0)  # a blank image never spikes (no NaN)


def test_rate_probabilities_uses_given_global_max_and_clips():
    images = np.array([[[1, 3], [0, 0]]], dtype=np.uint8)
    p, used = rate_probabilities(images, global_max=1.5)
    assert used == 1.5
    np.testing.assert_allclose(p[0], [1 / 6, 0.5, 0, 0], rtol=1e-6)
    p, _ = rate_probabilities(images, global_max=0.5)  # e.g. the training max applied to a test image
    assert p.max() == 1.0
    with pytest.raises(AstrosnnError, match="global max"):
        rate_probabilities(images, global_max=0.0)


def test_bernoulli_rate_matches_probability_within_standard_errors():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand((2, 64), generator=gen)
    probs[0, 0], probs[0, 1] = 0.0, 1.0
    steps = 20_000
    spikes = bernoulli_spikes(probs, steps, generator=torch.Generator().manual_seed(1))
    assert spikes.dtype == torch.bool and spikes.shape == (2, steps, 64)
    rate = spikes.float().mean(dim=1)
    se = torch.sqrt(probs * (1 - probs) / steps)
    assert torch.all((rate - probs).abs() <= 5 * se + 1e-6)
    assert rate[0, 0] == 0.0 and rate[0, 1] == 1.0


def test_bernoulli_same_seed_same_spikes_other_seed_differs():
    probs = np.full((3, 10), 0.3, dtype=np.float32)
    a = bernoulli_spikes(probs, 50, generator=torch.Generator().manual_seed(7))
    b = bernoulli_spikes(probs, 50, generator=torch.Generator().manual_seed(7))
    c = bernoulli_spikes(probs, 50, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bernoulli_rejects_bad_probabilities():
    with pytest.raises(AstrosnnError, match=r"\[0, 1\]"):
        bernoulli_spikes(np.array([[0.5, 1.2]]), 5)
    with pytest.raises(AstrosnnError, match="shape"):
        bernoulli_spikes(np.array([0.5]), 5)


def test_bin_events_on_hand_made_list():
    ev = _events(
        [
            (0, 0, 0, 400),  # rounds to ms 0, OFF channel 0
            (33, 33, 1, 1_600),  # ms 2, ON channel 1156 + 33*34 + 33
            (5, 2, 1, 1_700),  # ms 2
            (5, 2, 1, 2_200),  # same bin and channel: collapses with the one above
            (7, 1, 0, 249_400),  # ms 249: the last kept bin
            (7, 1, 0, 250_600),  # ms 251: beyond 250 steps, dropped
        ]
    )
    empty = _events([])
    frames = bin_events([ev, empty], steps=250)
    assert frames.dtype == torch.bool and frames.shape == (2, 250, CHANNELS)
    on = 34 * 34
    expected = {(0, 0), (2, on + 33 * 34 + 33), (2, on + 2 * 34 + 5), (249, 1 * 34 + 7)}
    got = {tuple(ix) for ix in frames[0].nonzero().tolist()}
    assert got == expected
    assert not frames[1].any()


def test_bin_events_start_ms_shifts_the_window():
    ev = _events([(1, 0, 0, 1_000), (2, 0, 0, 5_000), (3, 0, 0, 9_000)])
    frames = bin_events([ev], steps=5, start_ms=4)
    assert {tuple(ix) for ix in frames[0].nonzero().tolist()} == {(1, 2)}


def test_bin_events_rejects_out_of_range_coordinates():
    with pytest.raises(AstrosnnError, match="0..33"):
        bin_events([_events([(34, 0, 0, 0)])], steps=5)
