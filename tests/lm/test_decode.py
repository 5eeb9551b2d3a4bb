"""The fused single-token decoder equals the reference ``model.step`` (all memory rules, shift, astrocyte)."""

from __future__ import annotations

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm import build_model
from astrosnn.lm.decode import FusedDecoder, StepDecoder, make_decoder

VARIANTS = [
    dict(memory="hebbian"),
    dict(memory="hebbian", norm="denominator"),
    dict(memory="hebbian", token_shift=False),
    dict(memory="gated"),
    dict(memory="gated", norm="denominator", token_shift=False),
    dict(memory="delta"),
    dict(memory="delta", token_shift=False),
    dict(memory="gated-delta"),
    dict(memory="gated-delta", token_shift=False, shift_size=2),
    dict(memory="hebbian", reset=False, sigma="tanh", phi="softplus"),
    dict(memory="hebbian", phi="relu", sigma="relu", shift_size=3),
]


def _model(kind: str, dtype: torch.dtype, **options):
    torch.manual_seed(0)
    model = build_model(kind, 40, width=32, layers=2, heads=4, seq_len=64, zero_init_out=False,
                        threshold=0.5, **options)  # fmt: skip
    return model.eval().to(dtype)


def _compare(model, dtype, tokens: int = 50, batch: int = 2) -> tuple[float, float]:
    ids = torch.randint(0, 40, (batch, tokens), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, state = model(ids[:, :5])  # start from a prefilled (non-zero) state
        decoder = FusedDecoder(model)
        decoder.load_state(state)
        ref, got, spikes = [], [], 0.0
        for t in range(5, tokens):
            logits, state = model.step(ids[:, t], state)
            ref.append(logits)
            got.append(decoder.step(ids[:, t]).clone())
            spikes += float(state[0].amsu.s.sum() + state[0].mlp.s.sum())
    for mine, theirs in zip(decoder.state(), state):  # the exported state too
        for a, b in zip(torch.utils._pytree.tree_leaves(mine), torch.utils._pytree.tree_leaves(theirs)):
            assert a.shape == b.shape
    return float((torch.stack(ref) - torch.stack(got)).abs().max()), spikes


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_fused_step_equals_model_step(options, dtype, tol):
    err, spikes = _compare(_model("astrosnn", dtype, **options), dtype)
    assert spikes > 0, "the comparison must exercise spikes"
    assert err <= tol


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("memory", ["hebbian", "gated-delta"])
def test_fused_step_equals_model_step_with_the_clock(memory, dtype, tol):
    model = _model("astrosnn", dtype, memory=memory, clock=5)
    with torch.no_grad():
        for block in model.blocks:  # W_ck = W_cq = 0 at init: give the clock a say in the keys
            block.amsu.clock_kq.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
    err, spikes = _compare(model, dtype)
    assert spikes > 0 and err <= tol
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, state = model(ids)
        decoder = FusedDecoder(model)
        decoder.load_state(model(ids[:, :6])[1])
        for t in range(6, 12):
            decoder.step(ids[:, t])
    for mine, theirs in zip(decoder.state(), state):
        assert theirs.amsu.clock.abs().sum() > 0
        assert torch.allclose(mine.amsu.clock, theirs.amsu.clock, atol=tol * 10, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_fused_step_equals_model_step_without_astrocyte(dtype, tol):
    err, spikes = _compare(_model("lif-snn", dtype), dtype)
    assert spikes > 0 and err <= tol


def test_decoder_falls_back_where_the_fused_step_does_not_apply():
    for kind in ("lstm", "transformer", "linear-attention"):
        torch.manual_seed(0)
        dec = make_decoder(build_model(kind, 20, width=16, layers=1, heads=2, seq_len=16).eval())
        assert isinstance(dec, StepDecoder) and dec.fallback_reason
    dec = make_decoder(_model("astrosnn", torch.float32), fused=False)
    assert isinstance(dec, StepDecoder)
    assert isinstance(make_decoder(_model("astrosnn", torch.float32)), FusedDecoder)
    with pytest.raises(AstrosnnError, match="fused step"):
        FusedDecoder(build_model("lstm", 20, width=16, layers=1))


def test_fused_decoder_rejects_bad_ids():
    dec = FusedDecoder(_model("astrosnn", torch.float32))
    with pytest.raises(AstrosnnError):
        dec.step(torch.tensor([40]))
    with pytest.raises(AstrosnnError):
        dec.step(torch.tensor([1, 2]))


@pytest.mark.parametrize("kind", ["astrosnn", "lif-snn"])
def test_generation_samples_the_same_tokens_fused_and_reference(kind):
    from astrosnn.lm.generation import stream_ids

    model = _model(kind, torch.float32)
    fused = list(stream_ids(model, [1, 2, 3], fused=True, max_new_tokens=60, temperature=1.0, seed=3))
    reference = list(stream_ids(model, [1, 2, 3], fused=False, max_new_tokens=60, temperature=1.0, seed=3))
    assert fused == reference
