"""The fused numba LIF scan against the plain torch reference: spikes, membranes and gradients."""

from __future__ import annotations

import pytest
import torch

from astrosnn.core.surrogate import get_surrogate
from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan import lif_scan, lif_scan_reference
from astrosnn.lm.scan_numba import lif_scan_numba

B, T, N = 3, 37, 5



def _inputs(dtype=torch.float64, feedback=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.rand(*shape, generator=g, dtype=dtype) * scale + shift).requires_grad_(True)

    return dict(
        current=rnd(B, T, N, scale=1.2, shift=-0.1),
        feedback=rnd(B, T, N, scale=2.0, shift=-1.0) if feedback else None,
        beta=rnd(N, scale=0.5, shift=0.45),
        theta=rnd(N, scale=0.5, shift=0.75),
        u0=rnd(B, N, scale=2.0),
        s0=(torch.rand(B, N, generator=g) < 0.5).to(dtype).requires_grad_(True),
    )


def _run(fn, inputs, surrogate, reset, seed=1):
    cloned = {
        k: (None if v is None else v.detach().clone().requires_grad_(True))
        for k, v in inputs.items()
    }
    spikes, u_last = fn(surrogate=surrogate, reset=reset, **cloned)
    g = torch.Generator().manual_seed(seed)
    w_s = torch.randn(spikes.shape, generator=g, dtype=spikes.dtype)
    w_u = torch.randn(u_last.shape, generator=g, dtype=u_last.dtype)
    ((spikes * w_s).sum() + (u_last * w_u).sum()).backward()
    # an input the output does not depend on (s0 with the reset cut) has gradient zero
    grads = {
        k: torch.zeros_like(v) if v.grad is None else v.grad
        for k, v in cloned.items()
        if v is not None
    }
    return spikes.detach(), u_last.detach(), grads


@pytest.mark.parametrize("reset", ["cut", "uncut", "none"])
@pytest.mark.parametrize("surrogate", ["arctan", "sigmoid", "triangle"])
@pytest.mark.parametrize("feedback", [True, False])
def test_numba_matches_reference_forward_and_backward_float64(reset, surrogate, feedback):
    inputs = _inputs(feedback=feedback)
    sg = get_surrogate(surrogate)
    ref = _run(lif_scan_reference, inputs, sg, reset)
    fast = _run(lif_scan_numba, inputs, sg, reset)
    assert 0 < ref[0].mean() < 1  # both spikes and silence occur
    assert torch.equal(fast[0], ref[0])
    assert torch.allclose(fast[1], ref[1], atol=1e-12)
    assert set(fast[2]) == set(ref[2])
    for name, grad in ref[2].items():
        assert torch.allclose(fast[2][name], grad, atol=1e-10), name


def test_numba_float32_matches_reference():
    inputs = {k: (None if v is None else v.detach().float()) for k, v in _inputs().items()}
    sg = get_surrogate()
    ref = _run(lif_scan_reference, inputs, sg, "cut")
    fast = _run(lif_scan_numba, inputs, sg, "cut")
    assert fast[0].dtype == torch.float32
    assert torch.equal(fast[0], ref[0])
    for name, grad in ref[2].items():
        assert torch.allclose(fast[2][name], grad, atol=1e-4, rtol=1e-4), name


def test_reset_gradient_cut_changes_only_the_gradient():
    inputs = _inputs()
    sg = get_surrogate()
    cut = _run(lif_scan_numba, inputs, sg, "cut")
    uncut = _run(lif_scan_numba, inputs, sg, "uncut")
    assert torch.equal(cut[0], uncut[0]) and torch.equal(cut[1], uncut[1])
    assert not torch.allclose(cut[2]["current"], uncut[2]["current"])
    assert torch.count_nonzero(cut[2]["s0"]) == 0
    assert torch.count_nonzero(uncut[2]["s0"]) > 0


def test_no_reset_is_a_leaky_integrator():
    inputs = _inputs(feedback=False)
    spikes, u_last, _ = _run(lif_scan_numba, inputs, get_surrogate(), "none")
    u = inputs["u0"].detach()
    for t in range(T):
        u = inputs["beta"].detach() * u + inputs["current"].detach()[:, t]
        assert torch.equal(spikes[:, t], (u >= inputs["theta"].detach()).double())
    assert torch.allclose(u_last, u)


def test_auto_backend_falls_back_to_torch_for_other_dtypes():
    inputs = {
        k: (None if v is None else v.detach().to(torch.bfloat16)) for k, v in _inputs().items()
    }
    spikes, u_last = lif_scan(surrogate=get_surrogate(), **inputs)
    assert spikes.dtype == torch.bfloat16 and spikes.shape == (B, T, N)
    with pytest.raises(AstrosnnError, match="bfloat16"):
        lif_scan(surrogate=get_surrogate(), backend="numba", **inputs)


def test_bad_options_raise():
    inputs = {k: (None if v is None else v.detach()) for k, v in _inputs().items()}
    with pytest.raises(AstrosnnError, match="'soft'"):
        lif_scan(surrogate=get_surrogate(), reset="soft", **inputs)
    with pytest.raises(AstrosnnError, match="'cuda'"):
        lif_scan(surrogate=get_surrogate(), backend="cuda", **inputs)


def test_batch_split_across_threads_gives_the_same_result():
    g = torch.Generator().manual_seed(5)
    current = torch.rand(6, 64, 200, generator=g, dtype=torch.float64).requires_grad_(True)
    beta = torch.full((200,), 0.8, dtype=torch.float64)
    theta = torch.ones(200, dtype=torch.float64)
    u0 = torch.zeros(6, 200, dtype=torch.float64)
    sg = get_surrogate()
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            x = current.detach().clone().requires_grad_(True)
            spikes, u = lif_scan_numba(x, None, beta, theta, u0, u0, sg)
            (spikes.sum() + u.sum()).backward()
            results.append((spikes, u, x.grad))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)
