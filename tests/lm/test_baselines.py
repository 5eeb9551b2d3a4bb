"""Baselines and the model registry follow the LM protocol: split forward with carried state == full forward."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm import (
    build_model,
    count_parameters,
    model_from_config_dict,
    model_kinds,
    width_for_parameters,
)
from astrosnn.lm.baselines import TransformerConfig, TransformerLM
from astrosnn.lm.state import detach_state, flatten_state, unflatten_like

MODEL_KINDS = model_kinds()

V = 11


def tiny(kind: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"width": 16, "layers": 2, "heads": 2, "seq_len": 32, **extra}
    return build_model(kind, V, **options).double().eval()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_split_forward_with_state_equals_full_forward(kind):
    model = tiny(kind)
    ids = torch.randint(0, V, (3, 20), generator=torch.Generator().manual_seed(1))
    full, _ = model(ids)
    a, state = model(ids[:, :7])
    b, state = model(ids[:, 7:13], state)
    c, _ = model(ids[:, 13:], state)
    torch.testing.assert_close(torch.cat([a, b, c], dim=1), full, rtol=0, atol=1e-10)
    assert full.shape == (3, 20, V)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_token_by_token_equals_full_forward(kind):
    model = tiny(kind)
    ids = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(2))
    full, _ = model(ids)
    state, steps = model.init_state(2, dtype=torch.float64), []
    for t in range(ids.shape[1]):
        logits, state = model(ids[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-10)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_slides_its_window_beyond_the_context(positions):
    torch.manual_seed(0)
    model = TransformerLM(TransformerConfig(V, width=16, layers=2, heads=2, context=6, positions=positions)).double().eval()
    ids = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(3))
    logits, state = model(ids)
    assert state.ids.shape == (2, 6)
    for t in range(10):  # token t sees the last <= 6 tokens, positions counted from the window start
        window = ids[:, max(0, t - 5) : t + 1]
        expected, _ = model(window)
        torch.testing.assert_close(logits[:, t], expected[:, -1], rtol=0, atol=1e-10)
    # within the context, the cache is exact and attends to everything
    short, _ = model(ids[:, :6])
    torch.testing.assert_close(logits[:, :6], short, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_config_round_trips_through_json(kind):
    model = tiny(kind)
    d = json.loads(json.dumps(dataclasses.asdict(model.config)))
    rebuilt = model_from_config_dict(kind, d)
    assert rebuilt.config == model.config
    assert count_parameters(rebuilt) == count_parameters(model)
    assert model.kind == kind


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_state_detach_and_flatten_round_trip(kind):
    model = build_model(kind, V, width=16, layers=2, heads=2, seq_len=32)
    _, state = model(torch.randint(0, V, (2, 5)))
    detached = detach_state(state)
    leaves = flatten_state(detached)
    tensors = [x for x in leaves if x is not None]
    assert tensors and all(not x.requires_grad for x in tensors)
    assert any(x.requires_grad for x in flatten_state(state) if x is not None) or kind == "transformer"
    rebuilt = unflatten_like(detached, leaves)
    assert type(rebuilt) is type(detached)
    for x, y in zip(flatten_state(rebuilt), leaves):
        assert x is y


def test_unflatten_rejects_a_state_of_another_shape():
    model = build_model("lstm", V, width=16, layers=2)
    leaves = flatten_state(model.init_state(3))
    with pytest.raises(AstrosnnError, match="shape"):
        unflatten_like(model.init_state(2), leaves)
    with pytest.raises(AstrosnnError, match="tensors"):
        unflatten_like(model.init_state(2), leaves[:1])


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_width_for_parameters_hits_the_target(kind):
    target = 60_000
    width = width_for_parameters(kind, 65, target, layers=2, heads=4, seq_len=64)
    params = count_parameters(build_model(kind, 65, width=width, layers=2, heads=4, seq_len=64))
    assert abs(params - target) / target < 0.15
    if kind != "lstm":
        assert width % 4 == 0


def test_registry_rejects_bad_kinds_and_options():
    with pytest.raises(AstrosnnError, match="unknown model 'gru'"):
        build_model("gru", V)
    with pytest.raises(AstrosnnError, match="unknown option.*colour"):
        build_model("lstm", V, colour="red")
    with pytest.raises(AstrosnnError, match="divisible"):
        build_model("transformer", V, width=10, heads=3)
    with pytest.raises(AstrosnnError, match="contradicts"):
        build_model("lif-snn", V, astrocyte=True)
    assert build_model("lif-snn", V, width=16, heads=2).kind == "lif-snn"
    assert build_model("astrosnn", V, width=16, heads=2).config.amsu.astrocyte is True


def test_bad_token_ids_raise():
    model = tiny("lstm")
    with pytest.raises(AstrosnnError, match="0..10"):
        model(torch.tensor([[0, V]]))
