"""Readouts beyond the paper's (issue 13 §6) on synthetic spike counts."""

import numpy as np
import pytest

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.readout_variants import evaluate_readouts, transform_counts


def _features(n=(120, 40, 40), neurons=30, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = rng.poisson(3.0, size=(3, neurons)).astype(np.float32)
    out = {}
    for split, size in zip(("train", "validation", "test"), n):
        labels = rng.integers(0, 3, size)
        out[f"{split}.counts"] = rng.poisson(prototypes[labels] * 2).astype(np.float32)
        out[f"{split}.labels"] = labels.astype(np.int64)
    return out


def test_every_readout_separates_distinct_count_patterns():
    scores = evaluate_readouts(_features())
    assert {(s.transform, s.fit) for s in scores} == {
        (t, f) for t in ("l1", "sqrt-std", "log1p-std") for f in ("ridge-cv", "logistic")}
    for s in scores:
        assert s.test_accuracy > 0.9, s
        assert s.chosen.startswith(("alpha=", "C="))


def test_standardised_transforms_use_training_statistics():
    f = _features()
    train, test = f["train.counts"], f["test.counts"]
    train[:, 0] = 0  # a silent neuron stays 0, never NaN
    x = transform_counts("log1p-std", train, train)
    assert np.allclose(x[:, 1:].mean(axis=0), 0, atol=1e-9) and np.allclose(x[:, 1:].std(axis=0), 1)
    assert (x[:, 0] == 0).all()
    shifted = transform_counts("sqrt-std", train, test + 1)
    assert not np.allclose(shifted.mean(axis=0)[1:], 0, atol=1e-3)  # test data is not re-centred
    l1 = transform_counts("l1", train, train)
    assert l1.max() == pytest.approx(1.0)


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.pop("validation.labels"), "validation.labels"),
    (lambda f: f.__setitem__("test.counts", f["test.counts"][:, :5]), "different numbers of neurons"),
    (lambda f: f["train.counts"].__setitem__((0, 0), np.nan), "NaN"),
    (lambda f: f.__setitem__("test.labels", f["test.labels"][:3]), "do not match"),
])
def test_bad_features_get_one_clear_error(damage, message):
    f = _features()
    damage(f)
    with pytest.raises(AstrosnnError, match=message):
        evaluate_readouts(f, fits=("ridge-cv",))


def test_unknown_names_are_refused():
    with pytest.raises(AstrosnnError, match="unknown readout fit"):
        evaluate_readouts(_features(), fits=("svm",))
    with pytest.raises(AstrosnnError, match="unknown readout transform"):
        transform_counts("zscore", np.ones((2, 2)), np.ones((2, 2)))
