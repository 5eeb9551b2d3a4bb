"""Astrocyte write rules: step == chunked sequence (float64), gradients, fla's references, model decoding."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm.amsu import AMSU, AMSUConfig
from astrosnn.lm.memory import _log_alpha, fla_sequence, memory_names, memory_rule
from astrosnn.lm.registry import build_model, make_config

RULES = ("hebbian", "delta", "gated", "gated-delta")
B, HEADS, DH = 2, 3, 4


def _inputs(rule_name: str, T: int, seed: int = 0, requires_grad: bool = False):
    rule = memory_rule(rule_name)
    g = torch.Generator().manual_seed(seed)

    def r(*shape, positive=False):
        t = torch.rand(*shape, generator=g, dtype=torch.float64) if positive else \
            torch.randn(*shape, generator=g, dtype=torch.float64)  # fmt: skip
        return t.requires_grad_(requires_grad)

    positive = rule.supports_denominator  # hebbian/gated: phi-positive keys and queries
    q, k = r(B, HEADS, T, DH, positive=positive), r(B, HEADS, T, DH, positive=positive)
    v = r(B, HEADS, T, DH)
    gates = r(B, HEADS, T, rule.gate_count) if rule.gate_count else None
    log_lam = torch.log(torch.tensor([0.5, 0.9, 0.999], dtype=torch.float64)).requires_grad_(requires_grad)
    H0 = r(B, HEADS, DH, DH)
    z0 = r(B, HEADS, DH, positive=True) if rule.supports_denominator else None
    return q, k, v, gates, log_lam, H0, z0


def _unrolled(rule_name, q, k, v, gates, log_lam, H, z):
    rule, ys, dens = memory_rule(rule_name), [], []
    for t in range(q.shape[2]):
        gt = None if gates is None else gates[:, :, t]
        y, den, H, z = rule.step(q[:, :, t], k[:, :, t], v[:, :, t], H, z, log_lam, gt)
        ys.append(y)
        dens.append(den)
    return torch.stack(ys, 2), (None if z is None else torch.stack(dens, 2)), H, z


def test_the_rules_are_registered_and_bad_names_list_them():
    assert memory_names() == RULES
    with pytest.raises(AstrosnnError, match=r"^unknown AM-SU memory 'hopfield'; choose one of hebbian, delta, "):
        AMSUConfig(memory="hopfield")


@pytest.mark.parametrize("rule_name", RULES)
@pytest.mark.parametrize("chunk", [1, 4, 7, 32])
def test_chunked_sequence_equals_the_step_recurrence(rule_name, chunk):
    T = 23  # not a multiple of 4, 7 or 32
    q, k, v, gates, log_lam, H0, z0 = _inputs(rule_name, T)
    y_ref, den_ref, H_ref, z_ref = _unrolled(rule_name, q, k, v, gates, log_lam, H0, z0)
    rule = memory_rule(rule_name)
    cut = 10  # two calls, the state carried between them
    parts = [slice(0, cut), slice(cut, T)]
    H, z, ys, dens = H0, z0, [], []
    for p in parts:
        y, den, H, z = rule.sequence(q[:, :, p], k[:, :, p], v[:, :, p], H, z, log_lam, chunk,
                                     None if gates is None else gates[:, :, p])  # fmt: skip
        ys.append(y)
        dens.append(den)
    assert torch.allclose(torch.cat(ys, 2), y_ref, atol=1e-10, rtol=0)
    assert torch.allclose(H, H_ref, atol=1e-10, rtol=0)
    if z0 is not None:
        assert torch.allclose(torch.cat(dens, 2), den_ref, atol=1e-10, rtol=0)
        assert torch.allclose(z, z_ref, atol=1e-10, rtol=0)
    else:
        assert z is None and dens == [None, None]


@pytest.mark.parametrize("rule_name", RULES)
def test_an_empty_sequence_keeps_the_state(rule_name):
    q, k, v, gates, log_lam, H0, z0 = _inputs(rule_name, 0)
    y, _, H, z = memory_rule(rule_name).sequence(q, k, v, H0, z0, log_lam, 4, gates)
    assert y.shape == q.shape and torch.equal(H, H0)


@pytest.mark.parametrize("rule_name", RULES)
def test_chunked_gradients_equal_the_unrolled_ones(rule_name):
    T = 9
    inputs = _inputs(rule_name, T, seed=1, requires_grad=True)
    q, k, v, gates, log_lam, H0, z0 = inputs
    leaves = [t for t in inputs if t is not None]
    w = torch.randn(B, HEADS, T, DH, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def loss(y, den, H, z):
        total = (y * w).sum() + (H * H).sum()
        if den is not None:
            total = total + den.sin().sum() + z.sum()
        return total

    ref = torch.autograd.grad(loss(*_unrolled(rule_name, *inputs)), leaves, allow_unused=True)
    got = torch.autograd.grad(
        loss(*memory_rule(rule_name).sequence(q, k, v, H0, z0, log_lam, 4, gates)), leaves, allow_unused=True
    )
    for a, b in zip(ref, got):
        if a is None:
            assert b is None or not b.any()
            continue
        assert torch.isfinite(b).all() and torch.allclose(a, b, atol=1e-8, rtol=0)


def test_gated_decay_starts_at_lambda_and_stays_in_0_1():
    log_lam = torch.log(torch.tensor([0.5, 0.97], dtype=torch.float64))
    assert torch.allclose(_log_alpha(log_lam, torch.zeros(1, 2)), log_lam.view(1, 2))
    alpha = _log_alpha(log_lam, torch.linspace(-30, 30, 7, dtype=torch.float64).view(1, 1, 7).expand(1, 2, 7)).exp()
    assert (alpha > 0).all() and (alpha < 1).all()


# --- flash-linear-attention: the CUDA kernels' argument mapping, checked with fla's plain-torch references ---


def _float32(fn):
    """fla's naive references compute in float32; hand them float32 so none of them mixes dtypes."""

    def call(**kw):
        return fn(**{n: (t.float() if isinstance(t, torch.Tensor) else t) for n, t in kw.items()})

    return call


def _fla_naive(op: str):
    """fla's plain-torch reference module ``fla/ops/<op>/naive.py``, loaded by path: importing ``fla.ops`` pulls
    in every Triton kernel (a minute of CPU here), the naive files need only torch and einops."""
    pytest.importorskip("einops")
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("fla (flash-linear-attention) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "ops" / op / "naive.py"
    module_spec = importlib.util.spec_from_file_location(f"_fla_naive_{op}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _fla_refs(kind):
    gdn, gla = _fla_naive("gated_delta_rule"), _fla_naive("simple_gla")
    naive_recurrent_gated_delta_rule, naive_chunk_gated_delta_rule = (
        gdn.naive_recurrent_gated_delta_rule, gdn.naive_chunk_gated_delta_rule)  # fmt: skip
    naive_recurrent_simple_gla, naive_chunk_simple_gla = gla.naive_recurrent_simple_gla, gla.naive_chunk_simple_gla

    if kind == "gated":
        return [naive_recurrent_simple_gla, lambda **kw: naive_chunk_simple_gla(chunk_size=8, **kw)]
    if kind == "gated-delta":
        return [naive_recurrent_gated_delta_rule, lambda **kw: naive_chunk_gated_delta_rule(chunk_size=8, **kw)]
    # chunk_delta_rule takes no g: its references are the gated ones at g = 0
    return [lambda **kw: naive_recurrent_gated_delta_rule(g=torch.zeros_like(kw["beta"]), **kw),
            lambda **kw: naive_chunk_gated_delta_rule(g=torch.zeros_like(kw["beta"]), chunk_size=8, **kw)]  # fmt: skip


@pytest.mark.parametrize("rule_name", ["gated", "delta", "gated-delta"])
def test_fla_mapping_reproduces_the_step_form(rule_name):
    T = 19
    q, k, v, gates, log_lam, H0, _ = _inputs(rule_name, T, seed=2)
    y_ref, _, H_ref, _ = _unrolled(rule_name, q, k, v, gates, log_lam, H0, None)
    rule = memory_rule(rule_name)
    if rule_name == "gated":
        kw = {"g": _log_alpha(log_lam, gates[..., 0])}
    else:
        beta, g = rule._gates(log_lam, gates)
        kw = {"beta": beta, "g": g}
        q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    for ref in _fla_refs(rule_name):
        y, H = fla_sequence(rule_name, q, k, v, H0, kernel=_float32(ref), **kw)
        assert y.dtype == torch.float64 and H.shape == H0.shape
        assert torch.allclose(y, y_ref, atol=2e-5, rtol=1e-5)
        assert torch.allclose(H, H_ref, atol=2e-5, rtol=1e-5)


def test_hebbian_is_simple_gla_with_a_fixed_decay():
    naive_recurrent_simple_gla = _fla_naive("simple_gla").naive_recurrent_simple_gla
    q, k, v, _, log_lam, H0, _ = _inputs("hebbian", 15, seed=3)
    y_ref, _, H_ref, _ = _unrolled("hebbian", q, k, v, None, log_lam, H0, None)
    g = log_lam.view(1, HEADS, 1).expand(B, HEADS, 15)
    y, H = fla_sequence("gated", q, k, v, H0, g=g, kernel=_float32(naive_recurrent_simple_gla))
    assert torch.allclose(y, y_ref, atol=2e-5, rtol=1e-5) and torch.allclose(H, H_ref, atol=2e-5, rtol=1e-5)


def test_delta_matches_fla_delta_rule_recurrence():
    delta_rule_recurrence = _fla_naive("delta_rule").delta_rule_recurrence
    q, k, v, gates, log_lam, H0, _ = _inputs("delta", 13, seed=4)
    y_ref, _, H_ref, _ = _unrolled("delta", q, k, v, gates, log_lam, H0, None)
    qn, kn = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    # its own layout [B, H, T, K] and a fixed scale d_k^-0.5 (undone here)
    o, S = delta_rule_recurrence(qn * math.sqrt(DH), kn, v, torch.sigmoid(gates[..., 0]),
                                 initial_state=H0.transpose(-1, -2).float())  # fmt: skip
    assert torch.allclose(o.double(), y_ref, atol=2e-5, rtol=1e-5)
    assert torch.allclose(S.transpose(-1, -2).double(), H_ref, atol=2e-5, rtol=1e-5)


# --- the layer and the models ---


def _layer(memory, **kw):
    torch.manual_seed(0)
    return AMSU(AMSUConfig(width=12, heads=3, memory=memory, chunk_size=5, **kw)).double()


@pytest.mark.parametrize("neuron", ["lif", "none"])
@pytest.mark.parametrize("memory", RULES)
def test_layer_forms_agree_and_every_parameter_learns(memory, neuron):
    layer = _layer(memory, neuron=neuron)
    x = (torch.randn(2, 17, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2)
    x.requires_grad_(True)
    out, state = layer(x)
    st, steps = None, []
    for t in range(17):
        o, st = layer.step(x[:, t], st)
        steps.append(o)
    if neuron == "lif":
        assert torch.equal(out, torch.stack(steps, 1)) and 0.02 < out.mean() < 0.98
    else:
        assert torch.allclose(out, torch.stack(steps, 1), atol=1e-12) and state.u.numel() == 0
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(state, st))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert hasattr(layer, "lambda_logit") == memory_rule(memory).uses_decay
    assert hasattr(layer, "gate") == (memory != "hebbian")


def test_default_hebbian_layer_is_unchanged():
    layer = AMSU(AMSUConfig(width=8, heads=2))
    names = [n for n, _ in layer.named_parameters()]
    assert names == ["beta_logit", "shift", "lambda_logit", "gain", "current.weight", "current.bias",
                     "key.weight", "query.weight", "value.weight"]  # fmt: skip (the order before the rules)
    assert layer.params().w_gate is None


@pytest.mark.parametrize("options, match", [
    ({"memory": "delta", "norm": "denominator"}, "memory 'delta' allows norm 'rms' only"),
    ({"memory": "gated-delta", "norm": "denominator"}, "needs positive keys"),
    ({"neuron": "none", "astrocyte": False}, "neuron 'none' needs the astrocyte"),
    ({"neuron": "izhikevich"}, "neuron 'izhikevich'"),
])  # fmt: skip
def test_bad_combinations_are_one_line_errors(options, match):
    with pytest.raises(AstrosnnError, match=match) as info:
        AMSUConfig(width=8, heads=2, **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind, memory", [("astrosnn", m) for m in RULES] + [("linear-attention", m) for m in RULES])
def test_model_decoding_token_by_token_equals_the_forward(kind, memory):
    torch.manual_seed(0)
    model = build_model(kind, 11, width=12, heads=3, layers=2, memory=memory, chunk_size=5,
                        zero_init_out=False).double()  # fmt: skip
    assert model.kind == kind and model.config.amsu.memory == memory
    ids = torch.randint(0, 11, (2, 17), generator=torch.Generator().manual_seed(1))
    logits, _ = model(ids)
    state, steps = None, []
    for t in range(17):
        out, state = model.step(ids[:, t], state)
        steps.append(out)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-10, rtol=0)


def test_options_route_to_the_amsu_section():
    config = make_config("astrosnn", 7, memory="gated-delta")
    assert config.amsu.memory == "gated-delta" and config.amsu.neuron == "lif"
    config = make_config("linear-attention", 7, **{"amsu.memory": "delta"})
    assert config.amsu.neuron == "none" and config.kind == "linear-attention"
    with pytest.raises(AstrosnnError, match="contradicts neuron='lif'"):
        make_config("linear-attention", 7, neuron="lif")


@pytest.mark.parametrize("kind, memory", [("linear-attention", "gated"), ("astrosnn", "gated-delta")])
def test_checkpoints_round_trip(tmp_path, kind, memory):
    from astrosnn.lm.checkpoint import load_checkpoint, save_checkpoint

    model = build_model(kind, 5, width=8, heads=2, layers=1, memory=memory)
    save_checkpoint(tmp_path, model, vocab=[str(i) for i in range(5)], level="char")
    loaded = load_checkpoint(tmp_path).model
    assert loaded.kind == kind and loaded.config == model.config
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(loaded(ids)[0], model(ids)[0])
