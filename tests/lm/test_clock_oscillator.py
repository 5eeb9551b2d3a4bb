"""The oscillating astrocyte clock: the chunked form and the numba scan equal the per-token loop; it keeps count
by phase; skipped tokens keep it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from astrosnn.lm.clock_numba import oscillator_scan
from astrosnn.lm.clock_oscillator import (
    oscillator_chunked,
    oscillator_init,
    oscillator_reference,
    oscillator_sequence,
)

B, T, P = 3, 45, 4


def _inputs(seed: int = 0, t: int = T):
    g = torch.Generator().manual_seed(seed)
    dt = F.softplus(torch.randn(B, t, P, generator=g, dtype=torch.float64) * 3)  # ~0 (skip) to ~10 (reset)
    u = torch.randn(B, t, 2 * P, generator=g, dtype=torch.float64)
    clock = torch.randn(B, 2 * P, generator=g, dtype=torch.float64)
    rates, freqs = oscillator_init(P)
    return dt, u, rates.double(), freqs.double(), clock


def _run(form, inputs, seed: int = 9):
    inputs = [x.clone().requires_grad_(True) for x in inputs]
    out, last = form(*inputs)
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + (last * torch.randn(last.shape, generator=g, dtype=out.dtype)).sum()
    return out, last, torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize(
    "form", [lambda *a: oscillator_chunked(*a, chunk_size=1), lambda *a: oscillator_chunked(*a, chunk_size=7),
             lambda *a: oscillator_chunked(*a, chunk_size=100), oscillator_sequence],  # sequence: the numba scan
    ids=["chunk1", "chunk7", "chunk100", "numba"],
)  # fmt: skip
def test_oscillator_forms_equal_the_per_token_loop(form):
    ref_out, ref_last, ref_grads = _run(oscillator_reference, _inputs())
    out, last, grads = _run(form, _inputs())
    assert out.shape == (B, T, 2 * P) and last.shape == (B, 2 * P)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads, ref_grads):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_oscillator_scan_passes_gradcheck_and_keeps_an_empty_sequence():
    g = torch.Generator().manual_seed(5)
    log_mag = (-torch.rand(2, 9, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    angle = (torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    drive = torch.randn(2, 9, 6, generator=g, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(oscillator_scan, (log_mag, angle, drive, c0))
    dt, u, rates, freqs, clock = _inputs(1, 0)
    out, last = oscillator_sequence(dt, u, rates, freqs, clock)
    assert out.shape == (B, 0, 2 * P) and torch.equal(last, clock)


def test_oscillator_keeps_count_by_phase_and_skips_tokens_with_no_step():
    rate, freq = torch.tensor([0.1], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    dt = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64).view(1, 4, 1)
    u = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(1, 4, 2).contiguous()  # drive 1 + 0i per tick
    c, _ = oscillator_sequence(dt, u, rate, freq, torch.zeros(1, 2, dtype=torch.float64))
    turn = complex(torch.exp(torch.complex(-rate, freq)).item())
    for t, n in enumerate((1, 2, 2, 3)):  # the third token (dt = 0) keeps the count
        want = (1 - turn**n) / (1 - turn)
        assert c[0, t, 0].item() == pytest.approx(want.real, abs=1e-12)
        assert c[0, t, 1].item() == pytest.approx(want.imag, abs=1e-12)


def test_oscillator_init_spans_slow_to_fast_periods():
    rates, freqs = oscillator_init(8)
    assert rates.shape == freqs.shape == (8,) and (rates > 0).all() and (freqs > 0).all()
    periods = 2 * torch.pi / freqs
    assert periods.min() == pytest.approx(3.0) and periods.max() == pytest.approx(64.0)
