"""Surrogate spike functions: Heaviside forward, the documented derivative backward, picklable."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from astrosnn.core.surrogate import ArcTan, Sigmoid, Triangle, get_surrogate
from astrosnn.errors import AstrosnnError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = torch.linspace(-3, 3, 601, dtype=torch.float64)


def _formula(name: str, alpha: float, x: torch.Tensor) -> torch.Tensor:
    """The derivatives written out independently of the library."""
    if name == "arctan":
        return alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
    if name == "sigmoid":
        e = torch.exp(-alpha * x)
        return alpha * e / (1 + e) ** 2
    return torch.where(x.abs() < 1 / alpha, alpha - alpha**2 * x.abs(), torch.zeros_like(x))


@pytest.mark.parametrize("name", ["arctan", "sigmoid", "triangle"])
@pytest.mark.parametrize("alpha", [None, 0.5, 3.0])
def test_forward_is_heaviside_and_backward_is_the_formula(name, alpha):
    sg = get_surrogate(name, alpha)
    x = X.clone().requires_grad_(True)
    out = sg(x)
    assert torch.equal(out, (X >= 0).double())
    out.backward(torch.ones_like(out))
    assert torch.allclose(x.grad, _formula(name, sg.alpha, X), atol=1e-12)


@pytest.mark.parametrize("name", ["arctan", "sigmoid", "triangle"])
def test_derivative_integrates_to_about_one(name):
    x = torch.linspace(-200, 200, 400001, dtype=torch.float64)
    area = torch.trapezoid(get_surrogate(name).derivative(x), x).item()
    assert area == pytest.approx(1.0, abs=0.01)


def test_defaults_and_classes():
    assert isinstance(get_surrogate(), ArcTan) and get_surrogate().alpha == 2.0
    assert isinstance(get_surrogate("Sigmoid"), Sigmoid)
    assert (
        isinstance(get_surrogate("triangle", 2), Triangle)
        and get_surrogate("triangle", 2).alpha == 2.0
    )


@pytest.mark.parametrize("name", ["arctan", "sigmoid", "triangle"])
def test_surrogates_pickle_and_deepcopy(name):
    sg = get_surrogate(name, 1.7)
    for clone in (pickle.loads(pickle.dumps(sg)), copy.deepcopy(sg)):
        assert type(clone) is type(sg) and clone.alpha == 1.7
        x = X.clone().requires_grad_(True)
        clone(x).sum().backward()
        assert torch.allclose(x.grad, sg.derivative(X))


def test_bad_surrogate_options_raise():
    with pytest.raises(AstrosnnError, match="'gauss'"):
        get_surrogate("gauss")
    with pytest.raises(AstrosnnError, match="alpha"):
        get_surrogate("arctan", -1.0)
