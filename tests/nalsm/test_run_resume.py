"""Long runs that survive (issue 13 §2, §4): phase 1 in checkpointed pieces gives the weights of one
uninterrupted phase 1; a run killed in phase 1 or phase 2 and resumed writes the same metrics.json; carried
phase-2 traces differ from reset ones and resume identically."""

import json

import numpy as np
import pytest
import torch

from astrosnn.nalsm.backends import available_backends
from astrosnn.nalsm.checkpoint import RunCheckpoint
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.engine import run_phase1, run_phase1_chunk
from astrosnn.nalsm.job import RunConfig, RunInterrupted, run
from astrosnn.nalsm.model import NALSM, _Phase1Samples
from astrosnn.runinfo import load_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = NALSMConfig.from_preset(
    "nalsm-digits", liquid__grid=(4, 4, 4), protocol__phase1_samples=40, protocol__batch_size=50,
    readout__batch_size=50, readout__max_epochs=60, readout__patience=30, protocol__bf_samples=3)
TIMING_KEYS = {"wall_time_s", "samples_per_s", "resumed", "versions", "torch_threads"}


def tiny(**kw) -> RunConfig:
    base = dict(config=CFG, limit=150, val_limit=50, test_limit=50, plots=False, progress=False,
                save_features=True, checkpoint_every=1, phase1_checkpoint_every=10)
    return RunConfig(**{**base, **kw})


def same_outputs(a, b) -> None:
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ma.items() if k not in TIMING_KEYS} == {k: v for k, v in mb.items() if k not in TIMING_KEYS}
    fa, fb = (load_tensors(d / "features.safetensors") for d in (a, b))
    assert fa.keys() == fb.keys()
    for key in fa:
        assert torch.equal(fa[key], fb[key]), key
    la, lb = (load_tensors(d / "liquid.safetensors")["weight"] for d in (a, b))
    assert torch.equal(la, lb)


@pytest.mark.parametrize("backend", available_backends())
def test_phase1_in_pieces_equals_one_go(backend):
    model = NALSM(CFG, backend=backend).build(64)
    model.input_kind = "images"
    rng = np.random.default_rng(0)
    X = rng.integers(0, 16, (30, 8, 8)).astype(np.float32)
    model.rate_max = 0.2
    samples = list(_Phase1Samples(model, X, "images", 23))
    p = model.plasticity(1)
    whole = run_phase1(model.network, samples, p, weights=model.weights, progress=False, backend=backend)
    w, x = model.weights, None
    for lo, hi in ((0, 5), (5, 6), (6, 20), (20, 23)):
        w, x = run_phase1_chunk(model.network, samples[lo:hi], p, w, x, backend=backend)
    assert torch.equal(w, whole)
    assert x.shape == (model.network.n_neurons,) and bool((x > 0).any())


def test_phase1_windows_are_the_same_in_any_order():
    """Spike-train (and event) windows come from one sequential generator, replayed for a resume."""
    model = NALSM(CFG).build(5)
    X = np.random.default_rng(1).random((7, 60, 5)) < 0.3
    seq = _Phase1Samples(model, X, "spikes", 12)
    in_order = [s.clone() for s in seq]
    fresh = _Phase1Samples(model, X, "spikes", 12)
    for i in (9, 3, 11, 0, 4):
        assert torch.equal(fresh[i], in_order[i]), i


def _kill_after(monkeypatch, method: str, n: int) -> None:
    original = getattr(RunCheckpoint, method)
    calls = {"n": 0}

    def killing(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, method, killing)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run(tiny(phase1_checkpoint_every=10**6), out)  # phase 1 in one go (the backend's sequence)
    return out


@pytest.mark.parametrize("where, method, n", [("phase 1", "save_phase1_progress", 2),
                                              ("phase 2", "save_chunk", 4)])
def test_killed_run_resumes_to_the_same_metrics(whole, tmp_path, monkeypatch, where, method, n):
    out = tmp_path / "parted"
    _kill_after(monkeypatch, method, n)
    with pytest.raises(RunInterrupted):
        run(tiny(), out)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    if where == "phase 1":
        assert not state["phase1_done"] and state["phase1"]["done"] == 20
        assert (out / "checkpoint" / "phase1-00000020.safetensors").is_file()
    else:
        assert state["phase1_done"] and state["phase1"] is None and len(state["chunks"]["train"]) == 3
    monkeypatch.undo()
    metrics = run(tiny(resume=True), out)
    assert metrics["resumed"]
    same_outputs(whole, out)
    wall = metrics["wall_time_s"]
    assert all(wall["total"] >= v for k, v in wall.items() if k != "total"), wall
    assert not (out / "checkpoint").exists()


def test_carried_traces_differ_and_resume_identically(whole, tmp_path, monkeypatch):
    carry = tmp_path / "carry"
    m = run(tiny(phase2_traces="carry"), carry)
    assert m["phase2_traces"] == "carry"
    reset_f, carry_f = (load_tensors(d / "features.safetensors")["train.counts"] for d in (whole, carry))
    assert torch.equal(reset_f[:50], carry_f[:50])  # the first batch starts from zeros either way
    assert not torch.equal(reset_f, carry_f)

    parted = tmp_path / "parted"
    _kill_after(monkeypatch, "save_chunk", 2)
    with pytest.raises(RunInterrupted):
        run(tiny(phase2_traces="carry"), parted)
    monkeypatch.undo()
    with pytest.raises(Exception, match="other settings"):  # the trace mode is part of the run's identity
        run(tiny(resume=True), parted)
    run(tiny(phase2_traces="carry", resume=True), parted)
    same_outputs(carry, parted)
