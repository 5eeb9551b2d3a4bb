"""The package's structure: light imports, the public API, the backend registry, the memoised slot layout."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import backends
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.engine import simulate
from astrosnn.nalsm.params import PlasticityConfig
from astrosnn.nalsm.topology import build_network


def _imports_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_config_and_engine_do_not_import_numba():
    assert "numba" not in _imports_after("import astrosnn.nalsm.config")
    assert "numba" not in _imports_after("import astrosnn.nalsm.engine")
    assert "torch" not in _imports_after("import astrosnn.nalsm")


def test_public_api():
    import astrosnn.nalsm as nalsm

    for name in ("NALSM", "NALSMConfig", "build_network", "simulate", "extract_features", "run_phase1",
                 "branching_factor", "PlasticityConfig", "run", "RunConfig", "register_backend", "get_backend"):
        assert callable(getattr(nalsm, name)), name
    with pytest.raises(AttributeError):
        nalsm.nope  # noqa: B018


def test_config_plasticity_is_the_engine_config():
    cfg = NALSMConfig.from_preset("lsm-stdp1000", seed=4)
    assert isinstance(cfg.plasticity, PlasticityConfig)
    assert (cfg.plasticity.rule, cfg.plasticity.seed, cfg.plasticity.rate_decay) == ("stdp", 4, 1.0)
    assert "rule" not in cfg.to_dict()["plasticity"]  # derived: config files keep their old keys
    assert NALSMConfig.from_dict({"plasticity": {"eta_p": 0.2}}).plasticity.astro_weight is None  # auto-scaled
    with pytest.raises(AstrosnnError, match="plasticity.rule"):
        NALSMConfig.from_dict({"plasticity": {"rule": "stdp"}})


def test_unknown_backend_is_one_line_listing_choices():
    with pytest.raises(AstrosnnError) as e:
        backends.get_backend("gpu")
    assert "reference" in str(e.value) and "\n" not in str(e.value)


def test_registered_backend_is_used():
    ref = backends.get_backend("reference")
    calls = []

    class Spy:
        def run_batch(self, *args):
            calls.append("batch")
            return ref.run_batch(*args)

        def run_sequence(self, *args):
            calls.append("sequence")
            return ref.run_sequence(*args)

    backends.register_backend("spy", Spy())
    try:
        net = build_network((3, 3, 3), 5, seed=0)
        x = torch.rand(2, 10, 5, generator=torch.Generator().manual_seed(0)) < 0.3
        cfg = PlasticityConfig()
        assert torch.equal(simulate(net, x, cfg, backend="spy").counts, simulate(net, x, cfg).counts)
        assert calls == ["batch"]
    finally:
        backends._REGISTRY.pop("spy")


def test_network_memo_is_kept_until_the_synapses_change():
    net = build_network((3, 3, 3), 5, seed=0)
    calls = []

    def compute(n):
        calls.append(1)
        return n.n_synapses

    assert net.memo("k", compute) == net.memo("k", compute) and len(calls) == 1
    net.pre = np.array(net.pre)  # a new array: recomputed
    net.memo("k", compute)
    assert len(calls) == 2
