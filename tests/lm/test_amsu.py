"""AM-SU: recurrent and chunked sequence forms agree; ablations; gradients; bad input."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.amsu import AMSU, AMSUConfig, multiscale_lambdas
from astrosnn.lm.memory import hebbian_chunked

B, T, D, H = 2, 40, 12, 3



def _layer(**kw) -> AMSU:
    torch.manual_seed(0)
    opts = dict(width=D, heads=H)
    opts.update(kw)
    return AMSU(AMSUConfig(**opts)).double()


def _x(seed=0, t=T):
    return (
        torch.randn(B, t, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    )


def _stepwise(layer, x, state=None):
    spikes = []
    for t in range(x.shape[1]):
        s, state = layer.step(x[:, t], state)
        spikes.append(s)
    return torch.stack(spikes, 1), state


def test_chunked_astrocyte_equals_the_recurrence():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.rand(B, H, T, 4, generator=g, dtype=torch.float64) for _ in range(3))
    H0 = torch.randn(B, H, 4, 4, generator=g, dtype=torch.float64)
    z0 = torch.rand(B, H, 4, generator=g, dtype=torch.float64)
    log_lam = torch.log(torch.tensor([0.5, 0.9, 0.999], dtype=torch.float64))
    Hs, zs, ys, dens = H0, z0, [], []
    for t in range(T):
        lam = log_lam.exp().view(1, H, 1)
        Hs = lam.unsqueeze(-1) * Hs + v[:, :, t].unsqueeze(-1) * k[:, :, t].unsqueeze(-2)
        zs = lam * zs + k[:, :, t]
        ys.append((Hs @ q[:, :, t].unsqueeze(-1)).squeeze(-1))
        dens.append((q[:, :, t] * zs).sum(-1))
    for chunk in (1, 7, 16, T, 100):
        y, den, H_end, z_end = hebbian_chunked(q, k, v, H0, z0, log_lam, chunk)
        assert torch.allclose(y, torch.stack(ys, 2), atol=1e-10, rtol=0)
        assert torch.allclose(den, torch.stack(dens, 2), atol=1e-10, rtol=0)
        assert torch.allclose(H_end, Hs, atol=1e-10) and torch.allclose(z_end, zs, atol=1e-10)


@pytest.mark.parametrize("chunk", [1, 7, 16, T])
@pytest.mark.parametrize("reset", [True, False])
@pytest.mark.parametrize("token_shift", [True, False])
def test_step_and_sequence_forms_agree(chunk, reset, token_shift):
    layer = _layer(chunk_size=chunk, reset=reset, token_shift=token_shift)
    x = _x()
    seq_spikes, seq_state = layer(x)
    step_spikes, step_state = _stepwise(layer, x)
    assert 0.02 < seq_spikes.mean() < 0.98
    assert torch.equal(seq_spikes, step_spikes)
    for a, b in zip(seq_state, step_state):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "options",
    [
        {"norm": "denominator"},
        {"phi": "relu", "sigma": "identity", "threshold_learnable": True},
        {"cut_reset_grad": False, "surrogate": "triangle", "lambda_learnable": False},
        {"lambda_init": 0.5, "shift_size": 2, "phi": "softplus", "sigma": "tanh"},
    ],
)
def test_ablations_agree_between_forms_and_in_halves(options):
    layer = _layer(chunk_size=7, **options)
    x = _x(1)
    seq_spikes, seq_state = layer(x)
    step_spikes, _ = _stepwise(layer, x)
    assert torch.equal(seq_spikes, step_spikes)
    first, state = layer(x[:, :13])
    second, state2 = layer(x[:, 13:], state)
    assert torch.equal(torch.cat([first, second], 1), seq_spikes)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(state2, seq_state))


def test_astrocyte_off_is_a_plain_lif_layer():
    layer = _layer(astrocyte=False)
    x = _x(2)
    spikes, state = layer(x)
    w, b = layer.current.weight.detach(), layer.current.bias.detach()
    beta = torch.sigmoid(layer.beta_logit.detach())
    u = torch.zeros(B, D, dtype=torch.float64)
    s = torch.zeros(B, D, dtype=torch.float64)
    expected = []
    for t in range(T):
        u = beta * u * (1 - s) + torch.sigmoid(x[:, t] @ w.T + b)
        s = (u >= 1.0).double()
        expected.append(s)
    assert torch.equal(spikes, torch.stack(expected, 1))
    assert torch.allclose(state.u, u)
    assert state.memory.numel() == 0 and not hasattr(layer, "key")


def test_gradients_reach_every_parameter_and_are_finite():
    layer = _layer(threshold_learnable=True, norm="denominator")
    x = _x(3).requires_grad_(True)
    spikes, _ = layer(x)
    (spikes * torch.randn_like(spikes)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_lambda_init_and_learnable_switch():
    layer = _layer(heads=4, width=8)
    expected = torch.tensor([1 - 2.0 ** (-5 - i) for i in range(4)], dtype=torch.float64)
    assert torch.allclose(layer.astrocyte_decay, expected)
    assert multiscale_lambdas(1) == [1 - 2.0**-5]
    fixed = _layer(lambda_learnable=False, lambda_init=0.7)
    assert "lambda_logit" not in dict(fixed.named_parameters())
    assert torch.allclose(fixed.astrocyte_decay, torch.full((H,), 0.7, dtype=torch.float64))


class Tagger(nn.Module):
    """A user's model with AM-SU as one layer (the README example)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 16)
        self.amsu = AMSU(width=16, heads=2)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        spikes, _ = self.amsu(self.inp(x))
        return self.out(spikes)


def test_drop_in_layer_in_a_user_model_trains_and_pickles():
    torch.manual_seed(0)
    model = Tagger()
    x = torch.randn(4, 20, 3)
    y = (x[..., 0] > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 2), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(clone(x), model(x))


def test_config_round_trips():
    config = AMSUConfig(width=8, heads=2, norm="denominator", lambda_init=0.3)
    assert AMSUConfig(**dataclasses.asdict(config)) == config


@pytest.mark.parametrize(
    "options, match",
    [
        ({"width": 10, "heads": 3}, "not divisible by heads 3"),
        ({"phi": "gelu"}, "phi 'gelu'"),
        ({"sigma": "softmax"}, "sigma 'softmax'"),
        ({"norm": "layer"}, "norm 'layer'"),
        ({"surrogate": "gauss"}, "surrogate 'gauss'"),
        ({"lambda_init": 1.5}, "lambda_init"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"threshold": -1.0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"surrogate_alpha": float("inf")}, "surrogate_alpha"),
    ],
)
def test_bad_config_raises(options, match):
    with pytest.raises(AstrosnnError, match=match):
        AMSUConfig(**{"width": 12, "heads": 3, **options})


def test_bad_input_raises():
    layer = _layer()
    with pytest.raises(AstrosnnError, match=r"\(B, T, width\).*\(2, 40, 5\)"):
        layer(torch.zeros(2, 40, 5, dtype=torch.float64))
    with pytest.raises(AstrosnnError, match="float"):
        layer(torch.zeros(2, 40, D, dtype=torch.long))
    with pytest.raises(AstrosnnError, match=r"\(B, width\)"):
        layer.step(torch.zeros(2, 4, D, dtype=torch.float64))
    state = layer.init_state(3)
    with pytest.raises(AstrosnnError, match="state u"):
        layer(_x(), state)


def test_other_dtypes_use_the_torch_path_and_train():
    layer = AMSU(AMSUConfig(width=D, heads=H)).to(torch.bfloat16)
    x = _x(4).to(torch.bfloat16).requires_grad_(True)
    spikes, state = layer(x)
    assert spikes.dtype == torch.bfloat16 and spikes.shape == (B, T, D)
    assert state.memory.dtype == torch.bfloat16
    spikes.sum().backward()
    assert torch.isfinite(x.grad.float()).all() and x.grad.abs().sum() > 0
