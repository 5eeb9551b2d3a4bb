"""The astrocyte clock: chunked form equals the per-token loop; the AM-SU's forms agree with it; it counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from astrosnn.errors import AstrosnnError
from astrosnn.lm.amsu import AMSU, AMSUConfig
from astrosnn.lm.clock import clock_chunked, clock_rates_init, clock_reference, clock_sequence
from astrosnn.lm.clock_numba import decayed_sum_scan
from astrosnn.lm.decode import fused_unsupported_reason, make_decoder
from astrosnn.lm.registry import build_model

B, T, C = 3, 45, 5


def _inputs(seed: int = 0, t: int = T):
    g = torch.Generator().manual_seed(seed)
    dt = F.softplus(torch.randn(B, t, C, generator=g, dtype=torch.float64) * 3)  # from ~0 (skip) to ~10 (reset)
    u = torch.randn(B, t, C, generator=g, dtype=torch.float64)
    clock = torch.randn(B, C, generator=g, dtype=torch.float64)
    return dt, u, clock_rates_init(C).double(), clock


@pytest.mark.parametrize("chunk", [1, 7, 16, T, 100])
def test_chunked_clock_equals_the_per_token_loop(chunk):
    dt, u, rate, clock = _inputs()
    ref, ref_last = clock_reference(dt, u, rate, clock)
    out, last = clock_chunked(dt, u, rate, clock, chunk)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    assert torch.allclose(last, ref_last, atol=1e-12, rtol=0)


def test_chunked_clock_gradients_equal_the_loop():
    dt, u, rate, clock = (t.requires_grad_(True) for t in _inputs(1, 20))
    weights = torch.randn(B, 20, C, dtype=torch.float64)
    grads = []
    for form in (lambda *a: clock_reference(*a), lambda *a: clock_chunked(*a, chunk_size=6)):
        out, _ = form(dt, u, rate, clock)
        grads.append(torch.autograd.grad((out * weights).sum(), (dt, u, rate, clock)))
    for a, b in zip(*grads):
        assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("t", [1, 2, T])
def test_numba_clock_scan_equals_the_loop_values_and_gradients(t):
    dt, u, rate, clock = (x.requires_grad_(True) for x in _inputs(3, t))
    weights = torch.randn(B, t, C, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    last_weights = torch.randn(B, C, dtype=torch.float64)
    results = []
    for form in (clock_reference, clock_sequence):  # clock_sequence takes the numba scan for CPU float64
        out, last = form(dt, u, rate, clock)
        loss = (out * weights).sum() + (last * last_weights).sum()
        results.append((out, last, torch.autograd.grad(loss, (dt, u, rate, clock))))
    (ref, ref_last, ref_grads), (out, last, grads) = results
    assert out.shape == (B, t, C) and torch.allclose(out, ref, atol=1e-12, rtol=0)
    assert torch.allclose(last, ref_last, atol=1e-12, rtol=0)
    for a, b in zip(grads, ref_grads):
        assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-10, rtol=0)


def test_numba_clock_scan_of_an_empty_sequence_keeps_the_clock():
    dt, u, rate, clock = _inputs(6, 0)
    out, last = clock_sequence(dt, u, rate, clock)
    assert out.shape == (B, 0, C) and torch.equal(last, clock)


def test_numba_clock_scan_passes_gradcheck_and_float32_matches_float64():
    g = torch.Generator().manual_seed(5)
    log_decay = (-torch.rand(2, 9, 3, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    drive = torch.randn(2, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(decayed_sum_scan, (log_decay, drive, c0))
    out64, _ = decayed_sum_scan(log_decay, drive, c0)
    out32, _ = decayed_sum_scan(log_decay.float(), drive.float(), c0.float())
    assert out32.dtype == torch.float32 and torch.allclose(out32.double(), out64, atol=1e-5)


def test_clock_counts_ticks_skips_noise_and_resets():
    rate = torch.tensor([0.5, 1.0], dtype=torch.float64)
    dt = torch.tensor([1.0, 1.0, 0.0, 1.0, 100.0, 1.0], dtype=torch.float64).view(1, 6, 1).expand(1, 6, 2)
    u = torch.ones(1, 6, 2, dtype=torch.float64)
    c, _ = clock_sequence(dt.contiguous(), u, rate, torch.zeros(1, 2, dtype=torch.float64), chunk_size=4)
    a = torch.exp(-rate)
    counts = [(1 - a**n) / (1 - a) for n in (1, 2, 2, 3)]  # the skipped token (dt = 0) keeps the count
    for t, want in enumerate(counts):
        assert torch.allclose(c[0, t], want, atol=1e-12)
    assert torch.allclose(c[0, 4], torch.full((2,), 100.0, dtype=torch.float64), atol=1e-12)  # reset to dt * u
    assert torch.allclose(c[0, 5], a * 100 + 1, atol=1e-12)


def _clock_layer(**kw) -> AMSU:
    torch.manual_seed(0)
    layer = AMSU(AMSUConfig(width=12, heads=3, clock=4, chunk_size=7, **kw)).double()
    torch.nn.init.normal_(layer.clock_kq, std=0.5)  # zero at init: give the clock a say in the keys
    return layer


@pytest.mark.parametrize("options", [{}, {"memory": "gated-delta", "phi": "identity"}, {"neuron": "none"},
                                     {"clock_kind": "oscillator"}])  # fmt: skip
def test_layer_with_clock_agrees_between_forms_and_in_halves(options):
    layer = _clock_layer(**options)
    x = torch.randn(2, 40, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    seq, seq_state = layer(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        out, state = layer.step(x[:, t], state)
        steps.append(out)
    assert torch.allclose(torch.stack(steps, 1), seq, atol=1e-9, rtol=0)
    assert torch.allclose(state.clock, seq_state.clock, atol=1e-10) and seq_state.clock.abs().sum() > 0
    first, mid = layer(x[:, :13])
    second, end = layer(x[:, 13:], mid)
    assert torch.allclose(torch.cat([first, second], 1), seq, atol=1e-9, rtol=0)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(end, seq_state))


@pytest.mark.parametrize("kind", ["counter", "oscillator"])
def test_clock_changes_the_keys_and_learns(kind):
    layer = _clock_layer(clock_kind=kind)
    x = torch.randn(2, 30, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    with_clock, _ = layer(x)
    torch.nn.init.zeros_(layer.clock_kq)
    without, _ = layer(x)
    assert not torch.equal(with_clock, without)
    torch.nn.init.normal_(layer.clock_kq, std=0.5)
    out, _ = layer(x)
    (out * torch.randn_like(out)).sum().backward()
    names = ("clock_in.weight", "clock_in.bias", "clock_log_rate", "clock_kq") + (("clock_freq",) if kind == "oscillator" else ())
    for name in names:
        grad = dict(layer.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_clock_off_leaves_the_paper_layer_unchanged():
    torch.manual_seed(0)
    plain = AMSU(AMSUConfig(width=12, heads=3))
    torch.manual_seed(0)
    clocked = AMSU(AMSUConfig(width=12, heads=3, clock=4))  # clock parameters are created last
    shared = plain.state_dict()
    assert all(torch.equal(shared[k], v) for k, v in clocked.state_dict().items() if k in shared)
    assert not any(k.startswith("clock") for k in shared)
    x = torch.randn(2, 20, 12)
    assert torch.equal(plain(x)[0], clocked(x)[0])  # W_ck = W_cq = 0 at init


@pytest.mark.parametrize(
    "options, match",
    [({"clock": -1}, "clock must be >= 0"), ({"clock": 4, "astrocyte": False}, "clock needs"),
     ({"clock": 3, "clock_kind": "oscillator"}, "even number of channels"),
     ({"clock": 4, "clock_kind": "sundial"}, "unknown AM-SU clock_kind 'sundial'")],
)
def test_bad_clock_config_raises(options, match):
    with pytest.raises(AstrosnnError, match=match):
        AMSUConfig(width=12, heads=3, **options)


def test_model_with_clock_builds_from_options_and_has_a_fused_decoder():
    model = build_model("astrosnn", vocab_size=20, width=16, layers=2, heads=2, clock=3)
    assert model.config.amsu.clock == 3
    assert fused_unsupported_reason(model) is None  # equality with model.step: tests/lm/test_decode.py


def test_oscillator_clock_builds_and_decodes_through_model_step():
    model = build_model("astrosnn", vocab_size=20, width=16, layers=2, heads=2, clock=4, clock_kind="oscillator")
    assert model.config.amsu.clock_kind == "oscillator" and model.blocks[0].amsu.clock_freq.shape == (2,)
    assert fused_unsupported_reason(model) == "the oscillator clock has no fused step"
    decoder = make_decoder(model.eval())
    assert not decoder.fused and decoder.fallback_reason == "the oscillator clock has no fused step"
