"""The Triton LIF scan (the GPU path), run on the CPU by Triton's interpreter, against the reference scan.

Triton reads ``TRITON_INTERPRET`` when it compiles, so the comparison runs in a fresh interpreter with the
variable set; it prints the largest differences as JSON and the tests assert on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from astrosnn.core.surrogate import get_surrogate
from astrosnn.errors import AstrosnnError
from astrosnn.lm.scan import lif_scan

pytest.importorskip("triton")

COMPARE = r"""
import json, torch
from astrosnn.core.surrogate import get_surrogate
from astrosnn.lm.scan import lif_scan
from astrosnn.lm import AstroSNNConfig, AstroSNNLM

def run(backend, reset, surrogate, with_feedback, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T, N = 2, 9, 131  # N over one block of 128 channels: a masked second block
    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_()
    current, u0 = rnd(B, T, N, scale=0.8), rnd(B, N)
    feedback = rnd(B, T, N, scale=0.5) if with_feedback else None
    beta = torch.rand(N, generator=g, dtype=torch.float64).mul(0.9).add(0.05).to(dtype).requires_grad_()
    theta = torch.rand(N, generator=g, dtype=torch.float64).add(0.5).to(dtype).requires_grad_()
    s0 = (torch.rand(B, N, generator=g) > 0.5).to(dtype).requires_grad_()
    spikes, u_last = lif_scan(current, feedback, beta, theta, u0, s0, get_surrogate(surrogate), reset, backend)
    w_s = torch.randn(B, T, N, generator=g, dtype=torch.float64).to(dtype)
    w_u = torch.randn(B, N, generator=g, dtype=torch.float64).to(dtype)
    ((spikes * w_s).sum() + (u_last * w_u).sum()).backward()
    inputs = [current, beta, theta, u0, s0] + ([feedback] if with_feedback else [])
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in inputs]  # unused: zero
    return [spikes.detach(), u_last.detach()] + grads

def worst_error(got, ref):
    return max(float((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())) for a, b in zip(got, ref))

worst = {"float64": 0.0, "float32": 0.0}
for reset in ("cut", "uncut", "none"):
    for surrogate in ("arctan", "sigmoid", "triangle"):
        for fb in (False, True):
            ref, got = run("torch", reset, surrogate, fb, torch.float64), run("triton", reset, surrogate, fb, torch.float64)
            worst["float64"] = max(worst["float64"], worst_error(got, ref))
    # float32 against the float32 reference: the same spike decisions, rounding-level differences
    ref, got = run("torch", reset, "arctan", True, torch.float32), run("triton", reset, "arctan", True, torch.float32)
    worst["float32"] = max(worst["float32"], worst_error(got, ref))

torch.manual_seed(0)
cfg = dict(vocab_size=11, width=24, layers=2, heads=4, chunk_size=5)
model = AstroSNNLM(AstroSNNConfig.from_dict(dict(**cfg, scan_backend="numba"))).double()
twin = AstroSNNLM(AstroSNNConfig.from_dict(dict(**cfg, scan_backend="triton"))).double()
twin.load_state_dict(model.state_dict())
ids = torch.randint(0, 11, (2, 23))
logits, _ = model(ids)
logits_t, _ = twin(ids)
logits.square().mean().backward()
logits_t.square().mean().backward()
grad_err = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), twin.parameters()))
worst["model_logits"] = float((logits - logits_t).abs().max())
worst["model_grads"] = grad_err
print(json.dumps(worst))
"""


@pytest.fixture(scope="module")
def triton_errors() -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", COMPARE], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_triton_scan_matches_reference_in_float64(triton_errors):
    # every reset mode, surrogate and feedback choice: spikes, last membrane and all six gradients
    assert triton_errors["float64"] < 1e-12


def test_triton_scan_float32_matches_float32_reference(triton_errors):
    assert triton_errors["float32"] < 1e-4


def test_astrosnn_model_same_logits_and_gradients_with_triton_scan(triton_errors):
    assert triton_errors["model_logits"] < 1e-12
    assert triton_errors["model_grads"] < 1e-12


def test_triton_scan_on_cpu_without_interpreter_is_a_clear_error():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter is on in this process")
    x = torch.zeros(1, 3, 4)
    with pytest.raises(AstrosnnError, match="triton scan runs on CUDA tensors"):
        lif_scan(x, None, torch.full((4,), 0.9), torch.ones(4), torch.zeros(1, 4), torch.zeros(1, 4),
                 get_surrogate("arctan"), "cut", "triton")  # fmt: skip
