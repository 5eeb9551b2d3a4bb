"""The NALSM readout (spec §6.3): normalised spike counts -> one linear softmax layer.

Normalisation: each sample's counts divided by their L1 norm (samples without a single liquid spike stay
all-zero instead of becoming NaN), then the whole (mini)batch divided by its largest entry. Training: weights and
bias from zero, soft targets softmax(+1 true / -1 others), cross-entropy + 5e-10 * ||W||^2 / 2, Adadelta (lr 0.1,
rho 0.95, eps 1e-8), fixed sample order; the reported test accuracy is the one at the epoch of best validation
accuracy, and training stops after `patience` epochs without a better validation accuracy. A closed-form
scikit-learn fit (ridge or logistic regression) on the same normalised features is offered for quick runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.config import ReadoutConfig
from astrosnn.nalsm.readout_adadelta import (
    DEFAULT_ADADELTA_ENGINE,
    check_engine,
    make_adadelta_engine,
)


def normalize_counts(counts: torch.Tensor | np.ndarray, scale: float | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """L1-normalise each row, then divide by `scale` (default: the largest entry of this batch).

    Rows with no spikes stay zero; an all-silent batch is returned as zeros (never NaN). `dtype`: the
    arithmetic's precision (float32 is the paper's readout; float64 for the scikit-learn fits)."""
    x = torch.as_tensor(np.asarray(counts) if not isinstance(counts, torch.Tensor) else counts)
    if x.ndim != 2:
        raise AstrosnnError(f"readout features must be 2-D (samples, neurons), got shape {tuple(x.shape)}")
    x = x.to(dtype)
    l1 = x.abs().sum(dim=1, keepdim=True)
    x = torch.where(l1 > 0, x / l1.clamp_min(1e-30), torch.zeros_like(x))
    if scale is None:
        scale = float(x.max()) if x.numel() else 0.0
    return x / scale if scale > 0 else x


def normalize_in_chunks(counts: torch.Tensor | np.ndarray, batch_size: int,
                        scale: float | None = None) -> torch.Tensor:
    """`normalize_counts` applied per consecutive chunk of `batch_size` rows (the paper's per-batch max)."""
    x = torch.as_tensor(np.asarray(counts) if not isinstance(counts, torch.Tensor) else counts)
    if x.ndim != 2:
        raise AstrosnnError(f"readout features must be 2-D (samples, neurons), got shape {tuple(x.shape)}")
    if len(x) == 0:
        return x.to(torch.float32)
    return torch.cat([normalize_counts(x[i:i + batch_size], scale) for i in range(0, len(x), batch_size)])


def soft_targets(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """softmax of +1 for the true class and -1 elsewhere (true ~0.451, others ~0.061 for 10 classes)."""
    signs = torch.full((len(labels), n_classes), -1.0)
    signs[torch.arange(len(labels)), labels] = 1.0
    return torch.softmax(signs, dim=1)


@dataclass
class ReadoutHistory:
    """Per-epoch accuracies (fractions) and mean training loss; `best_epoch` indexes these lists.

    With a validation split (which picks the epoch) `train_accuracy` is the running accuracy of the epoch's
    minibatches, each classified just before its update (free: a full pass over the training features per
    epoch costs as much as a third of the epoch at 8000 neurons); without one it is the end-of-epoch accuracy,
    which picks the epoch."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    train_accuracy_running: bool = False  # True: the running accuracy described above

    def to_dict(self) -> dict:
        return {"loss": self.loss, "train_accuracy": self.train_accuracy, "val_accuracy": self.val_accuracy,
                "test_accuracy": self.test_accuracy, "best_epoch": self.best_epoch,
                "train_accuracy_running": self.train_accuracy_running}


@dataclass
class Readout:
    """A trained linear readout: logits = W @ normalise(counts) + b; `classes[k]` is logit k's label."""

    weight: torch.Tensor  # (C, N)
    bias: torch.Tensor  # (C,)
    classes: np.ndarray  # (C,) original labels
    batch_size: int = 250
    scale: float | None = None  # None: per-batch max (paper); a number: fixed divisor (training max)
    method: str = "adadelta"
    history: ReadoutHistory = field(default_factory=ReadoutHistory)

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[1])

    def normalize(self, counts: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = normalize_in_chunks(counts, self.batch_size, self.scale)
        if x.shape[1] != self.n_features:
            raise AstrosnnError(f"readout expects {self.n_features} features per sample, got {x.shape[1]}")
        return x

    def decision_function(self, counts: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits (samples, classes). Chunks of `batch_size` rows share one batch max, as in training."""
        with torch.no_grad():
            return self.normalize(counts) @ self.weight.T + self.bias

    def predict_proba(self, counts: torch.Tensor | np.ndarray) -> np.ndarray:
        return torch.softmax(self.decision_function(counts), dim=1).numpy()

    def predict(self, counts: torch.Tensor | np.ndarray) -> np.ndarray:
        return self.classes[self.decision_function(counts).argmax(dim=1).numpy()]

    def score(self, counts: torch.Tensor | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
        return float(np.mean(self.predict(counts) == np.asarray(labels)))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"readout.weight": self.weight, "readout.bias": self.bias,
                "readout.classes": torch.as_tensor(np.asarray(self.classes, dtype=np.int64))}

    def metadata(self) -> dict:
        return {"batch_size": self.batch_size, "scale": self.scale, "method": self.method}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict) -> Readout:
        try:
            return cls(weight=tensors["readout.weight"].float(), bias=tensors["readout.bias"].float(),
                       classes=tensors["readout.classes"].numpy(), batch_size=int(metadata["batch_size"]),
                       scale=metadata.get("scale"), method=str(metadata.get("method", "adadelta")))
        except KeyError as e:
            raise AstrosnnError(f"readout checkpoint lacks {e.args[0]!r}") from None


def _encode_labels(labels: np.ndarray, classes: np.ndarray, what: str) -> torch.Tensor:
    idx = np.searchsorted(classes, labels)
    idx = np.clip(idx, 0, len(classes) - 1)
    unknown = classes[idx] != labels
    if unknown.any():
        raise AstrosnnError(f"{what} labels contain classes not seen in training: {sorted(set(labels[unknown]))[:5]}")
    return torch.as_tensor(idx, dtype=torch.long)


def _check_pair(x, y, what: str) -> tuple[torch.Tensor, np.ndarray]:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise AstrosnnError(f"{what} features must be 2-D (samples, neurons), got shape {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise AstrosnnError(f"{what} labels must be 1-D with {len(x)} entries, got shape {y.shape}")
    if not torch.isfinite(x.float()).all():
        raise AstrosnnError(f"{what} features contain NaN or infinite values")
    return x, y


def train_readout(train_x, train_y, val_x=None, val_y=None, test_x=None, test_y=None, *,
                  config: ReadoutConfig | None = None, progress: bool = False,
                  engine: str = DEFAULT_ADADELTA_ENGINE) -> Readout:
    """Fit the readout on spike counts. Without a validation set the training accuracy picks the epoch.

    `engine`: how the Adadelta method runs its epochs (`fused`, or `autograd`, the reference; see
    :mod:`astrosnn.nalsm.readout_adadelta`)."""
    cfg = config or ReadoutConfig()
    check_engine(engine)
    train_x, train_y = _check_pair(train_x, train_y, "training")
    if len(train_x) == 0:
        raise AstrosnnError("the readout needs at least one training sample")
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise AstrosnnError(f"the readout needs at least two classes, got {classes.tolist()}")
    scale = None
    if cfg.scale == "train":
        scale = float(normalize_counts(train_x, 1.0).max()) if len(train_x) else None  # L1 rows, unscaled
        scale = scale if scale and scale > 0 else None
    bs = cfg.batch_size
    xs = {"train": normalize_in_chunks(train_x, bs, scale)}
    ys = {"train": _encode_labels(train_y, classes, "training")}
    for name, x, y in (("val", val_x, val_y), ("test", test_x, test_y)):
        if x is not None and y is not None and len(x):
            x, y = _check_pair(x, y, name)
            if x.shape[1] != train_x.shape[1]:
                raise AstrosnnError(f"{name} features have {x.shape[1]} columns, training has {train_x.shape[1]}")
            xs[name] = normalize_in_chunks(x, bs, scale)
            ys[name] = _encode_labels(y, classes, name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add overhead (and thrash a shared CPU)
    try:
        if cfg.method == "adadelta":
            return _fit_adadelta(xs, ys, classes, cfg, scale, progress, engine)
        return _fit_closed_form(xs, ys, classes, cfg, scale)
    finally:
        torch.set_num_threads(threads)


def _accuracy(weight, bias, x, y) -> float:
    return float(((x @ weight.T + bias).argmax(dim=1) == y).float().mean())


def _fit_adadelta(xs, ys, classes, cfg: ReadoutConfig, scale, progress: bool, engine: str) -> Readout:
    from tqdm.auto import tqdm

    n_classes = len(classes)
    fit = make_adadelta_engine(engine, n_classes, xs["train"].shape[1], cfg)
    targets = soft_targets(ys["train"], n_classes)
    batches = [(xs["train"][i:i + cfg.batch_size], targets[i:i + cfg.batch_size], ys["train"][i:i + cfg.batch_size])
               for i in range(0, len(targets), cfg.batch_size)]
    select = "val" if "val" in xs else "train"
    hist = ReadoutHistory(train_accuracy_running=select == "val")
    best = (-1.0, fit.weight.clone(), fit.bias.clone())
    bar = tqdm(range(cfg.max_epochs), desc="readout", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        total, correct = fit.epoch(batches)
        with torch.no_grad():
            w, b = fit.weight, fit.bias
            hist.loss.append(total / len(targets))
            hist.train_accuracy.append(correct / len(targets) if select == "val"
                                       else _accuracy(w, b, xs["train"], ys["train"]))
            if "val" in xs:
                hist.val_accuracy.append(_accuracy(w, b, xs["val"], ys["val"]))
            if "test" in xs:
                hist.test_accuracy.append(_accuracy(w, b, xs["test"], ys["test"]))
        current = hist.val_accuracy[-1] if select == "val" else hist.train_accuracy[-1]
        if current > best[0]:
            best = (current, w.clone(), b.clone())
            hist.best_epoch = epoch
        elif epoch - hist.best_epoch >= cfg.patience:
            break
        bar.set_postfix({select: f"{current:.3f}", "best": f"{best[0]:.3f}@{hist.best_epoch}"}, refresh=False)
    bar.close()
    return Readout(weight=best[1], bias=best[2], classes=classes, batch_size=cfg.batch_size, scale=scale,
                   method="adadelta", history=hist)


def _fit_closed_form(xs, ys, classes, cfg: ReadoutConfig, scale) -> Readout:
    from sklearn.linear_model import LogisticRegression, RidgeClassifier

    x, y = xs["train"].double().numpy(), ys["train"].numpy()
    if cfg.method == "ridge":
        model = RidgeClassifier(alpha=cfg.ridge_alpha).fit(x, y)
    else:
        model = LogisticRegression(C=1.0 / cfg.ridge_alpha, max_iter=2000).fit(x, y)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if coef.shape[0] == 1 and len(classes) == 2:  # scikit-learn's binary form: one score for class 1
        coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
    weight = torch.as_tensor(coef, dtype=torch.float32)
    bias = torch.as_tensor(intercept, dtype=torch.float32)
    hist = ReadoutHistory(loss=[float("nan")], train_accuracy=[_accuracy(weight, bias, xs["train"], ys["train"])])
    if "val" in xs:
        hist.val_accuracy.append(_accuracy(weight, bias, xs["val"], ys["val"]))
    if "test" in xs:
        hist.test_accuracy.append(_accuracy(weight, bias, xs["test"], ys["test"]))
    return Readout(weight=weight, bias=bias, classes=classes, batch_size=cfg.batch_size, scale=scale,
                   method=cfg.method, history=hist)
