import json

import numpy as np
import pytest
import torch

from astrosnn.data.images import load_images
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.config import (
    NALSMConfig,
    grid_for_neurons,
    parse_grid,
    preset_names,
)
from astrosnn.nalsm.model import NALSM

QUICK = dict(liquid__grid=(4, 4, 4), protocol__phase1_samples=30, protocol__batch_size=100,
             readout__method="ridge", readout__batch_size=100)


@pytest.fixture(scope="module")
def digits():
    tr = load_images("digits", "train", limit=300)
    va = load_images("digits", "validation", limit=100)
    return tr, va


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("data, key", [
    ({"liquid": {"grid": [0, 4, 4]}}, "liquid.grid"),
    ({"liquid": {"gird": [4, 4, 4]}}, "liquid.gird"),
    ({"protocol": {"phase1_samples": -1}}, "protocol.phase1_samples"),
    ({"protocol": {"batch_size": 2.5}}, "protocol.batch_size"),
    ({"plasticity": {"astro_density": 1.5}}, "plasticity.astro_density"),
    ({"readout": {"method": "svm"}}, "readout.method"),
    ({"readout": {"lr": "fast"}}, "readout.lr"),
    ({"variant": "esn"}, "variant"),
    ({"seed": -3}, "seed"),
    ({"colour": 1}, "colour"),
])
def test_config_validation_names_the_key(data, key):
    with pytest.raises(AstrosnnError, match=f"'{key}'"):
        NALSMConfig.from_dict(data)


def test_config_round_trip_and_json(tmp_path):
    cfg = NALSMConfig.from_preset("nalsm8000").override({"seed": 5, "protocol.freeze_liquid": True})
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    back = NALSMConfig.from_json(path)
    assert back == cfg
    assert back.liquid.grid == (20, 20, 20) and back.astro_weight == 0.0075 and back.protocol.freeze_liquid
    assert json.loads(cfg.to_json())["liquid"]["grid"] == [20, 20, 20]


def test_presets_and_variant_semantics():
    assert {"nalsm1000", "nalsm8000", "lsm1000", "lsm-stdp1000", "nalsm-digits"} <= set(preset_names())
    nalsm = NALSMConfig.from_preset("nalsm1000")
    assert (nalsm.rule, nalsm.initial_weight, nalsm.astro_weight) == ("astro", 3.0, 0.015)
    lsm = NALSMConfig.from_preset("lsm1000", liquid__lsm_weight=1.1)
    assert (lsm.rule, lsm.initial_weight) == ("none", 1.1)
    assert NALSMConfig.from_preset("lsm-stdp1000").rule == "stdp"
    # the automatic w_astro reproduces the paper's values at 1000 and 8000 neurons
    assert NALSMConfig().override({"liquid.grid": (20, 20, 20)}).astro_weight == pytest.approx(0.0075)
    with pytest.raises(AstrosnnError, match="unknown preset"):
        NALSMConfig.from_preset("nalsm3")


def test_grid_helpers():
    assert parse_grid("10x10x10") == (10, 10, 10)
    assert grid_for_neurons(1000) == (10, 10, 10) and grid_for_neurons(8000) == (20, 20, 20)
    assert np.prod(grid_for_neurons(500)) == 500
    for bad in ("10x10", "0x4x4", "ax4x4"):
        with pytest.raises(AstrosnnError):
            parse_grid(bad)


# ------------------------------------------------------------------ model

def test_fit_predict_save_load_identical(digits, tmp_path):
    tr, va = digits
    model = NALSM.from_preset("nalsm-digits", **QUICK).fit(tr.images, tr.labels, va.images, va.labels)
    assert model.network.n_liquid == 64 and model.n_inputs == 64
    assert not torch.equal(model.weights, torch.from_numpy(model.network.weight))  # phase 1 changed the liquid
    feats = model.transform(va.images)
    assert feats.shape == (100, 64) and feats.dtype == np.float32 and feats.sum() > 0
    pred = model.predict(va.images)
    assert model.score(va.images, va.labels) == pytest.approx(np.mean(pred == va.labels))
    assert model.score(va.images, va.labels) > 0.3  # chance is 0.1
    model.save(tmp_path / "m")
    loaded = NALSM.load(tmp_path / "m")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.transform(va.images), feats)
    np.testing.assert_array_equal(loaded.predict(va.images), pred)


def test_time_binned_features_sum_to_the_counts(digits):
    tr, va = digits
    model = NALSM.from_preset("nalsm-digits", **QUICK)
    model.initialize(tr.images)
    counts = model.transform(va.images[:30])
    binned = model.transform_binned(va.images[:30], 5)
    assert binned.shape == (30, 5 * 64) and binned.dtype == np.float32
    np.testing.assert_array_equal(binned.reshape(30, 5, 64).sum(axis=1), counts)
    assert (binned.reshape(30, 5, 64).sum(axis=(0, 2)) > 0).sum() >= 2  # activity spread over several windows
    for bad in (0, 251, 2.5, True):
        with pytest.raises(AstrosnnError, match="bins must be an integer"):
            model.transform_binned(va.images[:2], bad)
    several = model.transform_windows(va.images[:30], [1, 5, 7])  # one phase 2 for all window counts
    np.testing.assert_array_equal(several[5], binned)
    np.testing.assert_array_equal(several[1], counts)
    assert several[7].shape == (30, 7 * 64)
    # the readable reference: slice sums of the same phase 2's rasters over the 7 windows' edges
    rasters = torch.cat([r.spikes[:, :, :64] for r in model.simulate(va.images[:30], record=True)]).numpy()
    edges = np.linspace(0, rasters.shape[1], 8).round().astype(int)
    reference = np.stack([rasters[:, a:z].sum(axis=1) for a, z in zip(edges[:-1], edges[1:])], axis=1)
    np.testing.assert_array_equal(several[7], reference.reshape(30, 7 * 64).astype(np.float32))
    for bad in ([], 5, "5"):
        with pytest.raises(AstrosnnError, match="at least one"):
            model.transform_windows(va.images[:2], bad)


def test_lsm_has_fixed_weights_of_one_magnitude(digits):
    tr, _ = digits
    model = NALSM.from_preset("lsm1000", n_inputs=64, **QUICK, liquid__lsm_weight=0.7)
    model.initialize(tr.images)
    assert np.allclose(np.abs(model.weights.numpy()), 0.7)
    assert model.counts["phase1_samples"] == 0


def test_spike_train_inputs_and_branching(digits):
    rng = torch.Generator().manual_seed(0)
    spikes = torch.rand(40, 250, 10, generator=rng) < 0.1
    labels = np.arange(40) % 2
    model = NALSM(NALSMConfig.from_preset("nalsm-digits", **QUICK)).fit(spikes, labels)
    assert model.n_inputs == 10 and model.transform(spikes[:5]).shape == (5, 64)
    bf, per = model.branching_factor(spikes, n=4)
    assert per.shape == (4,) and np.isfinite(bf) and bf > 0
    rec = model.record(spikes, n=2)
    assert rec.spikes.shape == (2, 250, 74) and rec.astro.shape == (2, 250)


def test_model_errors(digits, tmp_path):
    tr, _ = digits
    model = NALSM.from_preset("nalsm-digits", n_inputs=64, **QUICK)
    with pytest.raises(AstrosnnError, match="not trained"):
        model.predict(tr.images[:3])
    with pytest.raises(AstrosnnError, match="channels"):
        model.initialize(np.zeros((3, 5, 5), np.uint8))
    with pytest.raises(AstrosnnError, match="labels"):
        model.fit(tr.images[:10], tr.labels[:9])
    with pytest.raises(AstrosnnError, match="file not found"):
        NALSM.load(tmp_path)
    with pytest.raises(AstrosnnError, match="backend"):
        NALSM(backend="gpu")


def test_package_exports_the_estimator():
    import astrosnn.nalsm as liquid

    assert liquid.NALSM is NALSM and liquid.NALSMConfig is NALSMConfig
    with pytest.raises(AttributeError):
        liquid.NoSuchThing  # noqa: B018
