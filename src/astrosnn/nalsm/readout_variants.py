"""Readouts beyond the paper's (issue 13 §6): the same unsupervised liquid features, other transforms and fits.

The paper reads the liquid with one softmax layer on L1-normalised spike counts trained by Adadelta
(:mod:`astrosnn.nalsm.readout`). A reservoir-computing user would also try, on the same features:

- transforms: ``l1`` (the paper's per-sample L1 norm, scaled by the training set's largest entry), ``sqrt-std``
  and ``log1p-std`` (compress the count range, then standardise each neuron with the training set's mean and
  standard deviation; silent neurons stay 0);
- fits: ``ridge-cv`` (a one-vs-all ridge classifier, alpha chosen by efficient leave-one-out cross-validation
  on the training set: scikit-learn's ``RidgeClassifierCV``) and ``logistic`` (multinomial logistic regression,
  the inverse penalty ``C`` chosen on the validation set).

Every variant is fitted on the training split only and reported on validation and test, beside the paper's
readout, never instead of it. Time-binned counts come from `NALSM.transform_binned` and go through the same fits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.readout import normalize_counts

__all__ = ["FITS", "SPLITS", "TRANSFORMS", "ReadoutScore", "evaluate_readouts", "transform_counts"]

SPLITS = ("train", "validation", "test")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))
LOGISTIC_CS = (0.01, 0.1, 1.0)


def _l1(train: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The paper's normalisation: per-sample L1, then the training maximum (in float64)."""
    scale = float(normalize_counts(train, 1.0, dtype=torch.float64).max()) if train.size else 0.0
    return normalize_counts(other, scale if scale > 0 else 1.0, dtype=torch.float64).numpy()


def _standardised(compress: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def transform(train: np.ndarray, other: np.ndarray) -> np.ndarray:
        ref = compress(train)
        mean, std = ref.mean(axis=0), ref.std(axis=0)
        return np.divide(compress(other) - mean, std, out=np.zeros_like(other), where=std > 0)

    return transform


TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "l1": _l1,
    "sqrt-std": _standardised(np.sqrt),
    "log1p-std": _standardised(np.log1p),
}


def transform_counts(name: str, train: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` spike counts under transform ``name``, its statistics taken from ``train`` (float64)."""
    if name not in TRANSFORMS:
        raise AstrosnnError(f"unknown readout transform {name!r}; choose one of {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name](np.asarray(train, np.float64), np.asarray(other, np.float64))


@dataclass(frozen=True)
class ReadoutScore:
    transform: str
    fit: str
    chosen: str  # the selected hyper-parameter, e.g. "alpha=10"
    validation_accuracy: float
    test_accuracy: float
    fit_seconds: float


def _fit_ridge(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> tuple[object, str]:
    from sklearn.linear_model import RidgeClassifierCV

    model = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit(x["train"], y["train"])
    return model, f"alpha={model.alpha_:.3g}"


def _fit_logistic(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> tuple[object, str]:
    from sklearn.linear_model import LogisticRegression

    best = previous = None
    for c in LOGISTIC_CS:  # increasing C, each fit warm-started from the last (lbfgs; full scale: minutes)
        model = LogisticRegression(C=c, max_iter=200, tol=1e-3)
        if previous is not None:
            model.warm_start = True
            model.coef_, model.intercept_ = previous.coef_.copy(), previous.intercept_.copy()
        previous = model.fit(x["train"], y["train"])
        score = model.score(x["validation"], y["validation"])
        if best is None or score > best[0]:
            best = (score, model, c)
    return best[1], f"C={best[2]:g}"


FITS: dict[str, Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], tuple[object, str]]] = {
    "ridge-cv": _fit_ridge,
    "logistic": _fit_logistic,
}


def _check(features: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    counts, labels = {}, {}
    for split in SPLITS:
        for kind, store in (("counts", counts), ("labels", labels)):
            key = f"{split}.{kind}"
            if key not in features:
                raise AstrosnnError(f"features have no {key!r} (a features.safetensors from `nalsm train --save-features`)")
            store[split] = np.asarray(features[key])
        if counts[split].ndim != 2 or len(counts[split]) != len(labels[split]):
            raise AstrosnnError(f"{split}: counts {counts[split].shape} do not match labels {labels[split].shape}")
        if not np.isfinite(counts[split]).all():
            raise AstrosnnError(f"{split}.counts contain NaN or infinite values")
    widths = {c.shape[1] for c in counts.values()}
    if len(widths) != 1:
        raise AstrosnnError(f"splits have different numbers of neurons: {sorted(widths)}")
    return counts, labels


def evaluate_readouts(features: Mapping[str, np.ndarray], transforms: tuple[str, ...] = tuple(TRANSFORMS),
                      fits: tuple[str, ...] = tuple(FITS)) -> list[ReadoutScore]:  # fmt: skip
    """Fit every (transform, fit) pair on ``train.counts`` and score it on validation and test.

    ``features`` maps ``{train,validation,test}.{counts,labels}`` to arrays (what ``--save-features`` writes).
    """
    import time

    counts, labels = _check(features)
    for name in fits:
        if name not in FITS:
            raise AstrosnnError(f"unknown readout fit {name!r}; choose one of {', '.join(FITS)}")
    scores = []
    for t in transforms:
        x = {split: transform_counts(t, counts["train"], counts[split]) for split in SPLITS}
        for f in fits:
            start = time.perf_counter()
            model, chosen = FITS[f](x, labels)
            scores.append(ReadoutScore(
                t, f, chosen, float(model.score(x["validation"], labels["validation"])),
                float(model.score(x["test"], labels["test"])), time.perf_counter() - start,
            ))  # fmt: skip
    return scores
