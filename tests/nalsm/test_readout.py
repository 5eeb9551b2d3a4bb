import numpy as np
import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.config import ReadoutConfig
from astrosnn.nalsm.readout import (
    Readout,
    normalize_counts,
    normalize_in_chunks,
    soft_targets,
    train_readout,
)
from astrosnn.nalsm.readout_adadelta import ADADELTA_ENGINES, make_adadelta_engine

FAST = dict(lr=1.0, eps=1e-6, batch_size=32)


def blobs(n_per_class, n_features=30, n_classes=3, noise=0.5, seed=0):
    protos = np.random.default_rng(100).poisson(4.0, size=(n_classes, n_features)).astype(float)
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = np.clip(protos[y] + rng.normal(0, noise, (len(y), n_features)), 0, None)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def test_normalize_counts_l1_then_batch_max():
    counts = np.array([[1.0, 3.0, 0.0], [2.0, 2.0, 4.0]])
    x = normalize_counts(counts)
    l1 = counts / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(x.numpy(), l1 / l1.max(), rtol=1e-6)
    assert float(x.max()) == pytest.approx(1.0)


def test_normalize_guard_silent_sample_no_nan():
    counts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    x = normalize_counts(counts)
    assert torch.isfinite(x).all()
    assert x[0].abs().sum() == 0
    np.testing.assert_allclose(x[1].numpy(), [1.0, 0.0, 1.0])
    silent = normalize_counts(np.zeros((4, 5)))
    assert torch.isfinite(silent).all() and silent.abs().sum() == 0


def test_normalize_in_chunks_uses_each_chunks_max():
    counts = np.array([[1.0, 1.0], [1.0, 3.0], [1.0, 0.0], [0.0, 0.0]])
    x = normalize_in_chunks(counts, batch_size=2)
    np.testing.assert_allclose(x[:2].numpy(), [[0.5 / 0.75, 0.5 / 0.75], [0.25 / 0.75, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(x[2:].numpy(), [[1.0, 0.0], [0.0, 0.0]])


def test_soft_targets_are_softmax_of_plus_minus_one():
    t = soft_targets(torch.tensor([2, 0]), 10)
    assert t[0, 2] == pytest.approx(0.4509, abs=1e-3)
    assert t[0, 0] == pytest.approx(0.0610, abs=1e-3)
    np.testing.assert_allclose(t.sum(1).numpy(), 1.0, rtol=1e-6)


def test_adadelta_learns_a_separable_problem():
    x, y = blobs(60)
    xv, yv = blobs(20, seed=1)
    xt, yt = blobs(20, seed=2)
    r = train_readout(x, y, xv, yv, xt, yt, config=ReadoutConfig(max_epochs=300, patience=50, **FAST))
    h = r.history
    assert h.val_accuracy[h.best_epoch] >= 0.95
    assert r.score(xt, yt) >= 0.95
    assert len(h.loss) == len(h.train_accuracy) == len(h.val_accuracy) == len(h.test_accuracy)
    assert h.train_accuracy_running and h.to_dict()["train_accuracy_running"]  # validation picks the epoch
    assert h.loss[-1] < h.loss[0]


def test_the_fused_adadelta_epoch_follows_the_autograd_reference():
    x, y = blobs(40, noise=2.0)
    xs = normalize_in_chunks(x, 16)
    targets = soft_targets(torch.as_tensor(y), 3)
    labels = torch.as_tensor(y)
    batches = [(xs[i:i + 16], targets[i:i + 16], labels[i:i + 16]) for i in range(0, len(xs), 16)]
    cfg = ReadoutConfig(lr=1.0, eps=1e-6, weight_decay=1e-3)  # a weight decay large enough to matter
    ref, fused = (make_adadelta_engine(name, 3, xs.shape[1], cfg) for name in ("autograd", "fused"))
    for _ in range(15):
        (loss_ref, right_ref), (loss_fused, right_fused) = ref.epoch(batches), fused.epoch(batches)
        assert loss_fused == pytest.approx(loss_ref, rel=1e-5)
        assert right_fused == right_ref
        torch.testing.assert_close(fused.weight, ref.weight, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(fused.bias, ref.bias, rtol=1e-4, atol=1e-6)
    assert float(ref.weight.abs().max()) > 0.1  # they moved, together


def test_both_readout_engines_pick_the_same_epoch_and_accuracy():
    x, y = blobs(40, noise=4.0)
    xv, yv = blobs(15, noise=4.0, seed=1)
    cfg = ReadoutConfig(max_epochs=60, patience=20, **FAST)
    runs = {name: train_readout(x, y, xv, yv, config=cfg, engine=name) for name in ADADELTA_ENGINES}
    ref, fused = runs["autograd"].history, runs["fused"].history
    assert fused.best_epoch == ref.best_epoch
    assert fused.val_accuracy == ref.val_accuracy
    assert fused.train_accuracy == ref.train_accuracy
    np.testing.assert_allclose(fused.loss, ref.loss, rtol=1e-4)
    with pytest.raises(AstrosnnError, match="unknown readout engine 'sgd'"):
        train_readout(x, y, config=cfg, engine="sgd")


def test_without_validation_the_end_of_epoch_training_accuracy_picks_the_epoch():
    x, y = blobs(30, noise=4.0)
    r = train_readout(x, y, config=ReadoutConfig(max_epochs=40, patience=10, **FAST))
    h = r.history
    assert h.best_epoch == int(np.argmax(h.train_accuracy)) and not h.train_accuracy_running
    assert r.score(x, y) == pytest.approx(h.train_accuracy[h.best_epoch])


def test_best_validation_epoch_is_selected_and_reproduced():
    x, y = blobs(40, noise=4.0)
    xv, yv = blobs(15, noise=4.0, seed=1)
    xt, yt = blobs(15, noise=4.0, seed=2)
    cfg = ReadoutConfig(max_epochs=200, patience=25, **FAST)
    r = train_readout(x, y, xv, yv, xt, yt, config=cfg)
    h = r.history
    assert h.best_epoch == int(np.argmax(h.val_accuracy))  # first epoch with the highest validation accuracy
    # the returned weights are those of the best epoch, not of the last one
    assert r.score(xv, yv) == pytest.approx(h.val_accuracy[h.best_epoch])
    assert r.score(xt, yt) == pytest.approx(h.test_accuracy[h.best_epoch])
    assert len(h.val_accuracy) <= h.best_epoch + cfg.patience + 1


def test_early_stopping_keeps_the_first_epoch_when_validation_never_improves():
    # validation labels contradict the training labels: accuracy is 0 at every epoch after the first update
    x = np.array([[5.0, 0.0], [0.0, 5.0]] * 10)
    y = np.array([0, 1] * 10)
    cfg = ReadoutConfig(max_epochs=100, patience=7, **FAST)
    r = train_readout(x, y, x, 1 - y, config=cfg)
    assert r.history.best_epoch == 0
    assert len(r.history.val_accuracy) == cfg.patience + 1
    assert max(r.history.train_accuracy) == 1.0


@pytest.mark.parametrize("method", ["ridge", "logistic"])
def test_closed_form_readouts(method):
    x, y = blobs(40)
    xt, yt = blobs(20, seed=2)
    r = train_readout(x, y, xt, yt, config=ReadoutConfig(method=method))
    assert r.method == method
    assert r.score(xt, yt) >= 0.95
    assert r.history.val_accuracy == [pytest.approx(r.score(xt, yt))]


def test_train_scale_divides_by_the_largest_l1_normalised_training_entry():
    x, y = blobs(30)
    r = train_readout(x, y, config=ReadoutConfig(method="ridge", scale="train"))
    l1_rows = x / x.sum(axis=1, keepdims=True)
    assert r.scale == pytest.approx(float(l1_rows.max()), rel=1e-6)
    assert r.scale < 1  # an L1-normalised row of 30 active neurons never reaches 1


def test_binary_ridge_and_original_labels():
    x, y = blobs(30, n_classes=2)
    labels = np.where(y == 0, 3, 7)
    r = train_readout(x, labels, config=ReadoutConfig(method="ridge"))
    assert set(r.predict(x)) <= {3, 7}
    assert r.score(x, labels) >= 0.95


def test_readout_round_trip_through_tensors():
    x, y = blobs(30)
    r = train_readout(x, y, config=ReadoutConfig(max_epochs=20, **FAST))
    back = Readout.from_tensors(r.to_tensors(), r.metadata())
    np.testing.assert_array_equal(back.predict(x), r.predict(x))
    np.testing.assert_allclose(back.predict_proba(x), r.predict_proba(x))


def test_bad_readout_inputs():
    x, y = blobs(10)
    with pytest.raises(AstrosnnError, match="labels"):
        train_readout(x, y[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AstrosnnError, match="NaN"):
        train_readout(bad, y)
    with pytest.raises(AstrosnnError, match="two classes"):
        train_readout(x, np.zeros(len(x), dtype=int))
    with pytest.raises(AstrosnnError, match="not seen in training"):
        train_readout(x, y, x, y + 5)
    with pytest.raises(AstrosnnError, match="2-D"):
        normalize_counts(np.zeros(3))
