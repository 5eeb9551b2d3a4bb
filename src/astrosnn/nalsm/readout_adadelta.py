"""One Adadelta epoch of the readout's softmax regression, two ways: the autograd reference and a fused path.

Both minimise the same loss, `-(t * log_softmax(x W^T + b)).sum(1).mean() + wd/2 ||W||^2` with soft targets
`t`, and apply torch's Adadelta update (no weight decay inside the optimiser). `AutogradAdadelta` is the
readable reference: autograd through the loss and `torch.optim.Adadelta`. `FusedAdadelta` writes the gradient
out (`d loss / d logits = (softmax * sum(t) - t) / B`) and updates in place, which skips autograd's graph and the
optimiser's temporaries; on 8000 features it runs the epoch ~2x faster (BENCHMARKS.md). The two agree to
float32 rounding (tests/nalsm/test_readout.py holds them together over several epochs), not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.config import ReadoutConfig

Batches = Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (normalised features, soft targets, labels)


class AdadeltaEngine(Protocol):
    """Trains `weight` (classes x features) and `bias` in place.

    `epoch` returns the summed per-sample loss and how many samples the minibatch's logits classified right
    (each with the weights as they were before that minibatch's update: the running training accuracy)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def epoch(self, batches: Batches) -> tuple[float, int]: ...


class AutogradAdadelta:
    """The reference: autograd through the loss, then `torch.optim.Adadelta.step`."""

    def __init__(self, n_classes: int, n_features: int, cfg: ReadoutConfig):
        self._w = torch.zeros(n_classes, n_features, requires_grad=True)
        self._b = torch.zeros(n_classes, requires_grad=True)
        self._opt = torch.optim.Adadelta([self._w, self._b], lr=cfg.lr, rho=cfg.rho, eps=cfg.eps)
        self._wd = cfg.weight_decay

    @property
    def weight(self) -> torch.Tensor:
        return self._w.detach()

    @property
    def bias(self) -> torch.Tensor:
        return self._b.detach()

    def epoch(self, batches: Batches) -> tuple[float, int]:
        total, correct = 0.0, 0
        for xb, tb, yb in batches:
            logits = xb @ self._w.T + self._b
            loss = -(tb * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            loss = loss + self._wd * 0.5 * (self._w * self._w).sum()
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            total += float(loss.detach()) * len(xb)
            correct += int((logits.detach().argmax(dim=1) == yb).sum())
        return total, correct


class FusedAdadelta:
    """The same epoch with the gradient written out and Adadelta's update done in place."""

    def __init__(self, n_classes: int, n_features: int, cfg: ReadoutConfig):
        self.weight = torch.zeros(n_classes, n_features)
        self.bias = torch.zeros(n_classes)
        self._state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in (self.weight, self.bias)]
        self._lr, self._rho, self._eps, self._wd = cfg.lr, cfg.rho, cfg.eps, cfg.weight_decay

    def epoch(self, batches: Batches) -> tuple[float, int]:
        w, b, wd = self.weight, self.bias, self._wd
        total, correct = 0.0, 0
        for xb, tb, yb in batches:
            log_p = torch.log_softmax(torch.addmm(b, xb, w.T), dim=1)
            correct += int((log_p.argmax(dim=1) == yb).sum())
            cross = -float((tb * log_p).sum())
            total += cross + wd * 0.5 * float(torch.dot(w.view(-1), w.view(-1))) * len(xb)
            grad_logits = log_p.exp_().mul_(tb.sum(dim=1, keepdim=True)).sub_(tb).div_(len(xb))
            self._update(w, torch.mm(grad_logits.T, xb).add_(w, alpha=wd), self._state[0])
            self._update(b, grad_logits.sum(dim=0), self._state[1])
        return total, correct

    def _update(self, param, grad, state) -> None:
        """torch.optim.Adadelta's single-tensor step, in the same order."""
        square_avg, acc_delta = state
        square_avg.mul_(self._rho).addcmul_(grad, grad, value=1 - self._rho)
        std = square_avg.add(self._eps).sqrt_()
        delta = acc_delta.add(self._eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(self._rho).addcmul_(delta, delta, value=1 - self._rho)
        param.add_(delta, alpha=-self._lr)


ADADELTA_ENGINES: dict[str, type] = {"fused": FusedAdadelta, "autograd": AutogradAdadelta}
DEFAULT_ADADELTA_ENGINE = "fused"


def check_engine(name: str) -> None:
    if name not in ADADELTA_ENGINES:
        raise AstrosnnError(f"unknown readout engine '{name}' (known: {', '.join(ADADELTA_ENGINES)})")


def make_adadelta_engine(name: str, n_classes: int, n_features: int, cfg: ReadoutConfig) -> AdadeltaEngine:
    check_engine(name)
    return ADADELTA_ENGINES[name](n_classes, n_features, cfg)
