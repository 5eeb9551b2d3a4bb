"""Model folders and run checkpoints are checked on load (issue 18): checksums, config against tensors,
finite weights, valid counts, liquids of another run; plus a seeded fuzz of those files and early option
checks. Every fault is one AstrosnnError naming the file."""

import json
import random
import shutil

import numpy as np
import pytest
import torch

from astrosnn.cli import main
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.checkpoint import RunCheckpoint
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.job import RunConfig, RunInterrupted, run
from astrosnn.nalsm.model import NALSM
from astrosnn.runinfo import atomic_write_json, load_tensors, save_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = NALSMConfig.from_preset("nalsm-digits", liquid__grid=(3, 3, 3), protocol__phase1_samples=10,
                              protocol__batch_size=20, protocol__bf_samples=2, readout__method="ridge")


def tiny(**kw) -> RunConfig:
    return RunConfig(**{**dict(config=CFG, limit=60, val_limit=20, test_limit=20, plots=False, progress=False,
                               checkpoint_every=1, phase1_checkpoint_every=5), **kw})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    run(tiny(), out)
    return out


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """A run checkpoint interrupted after its second train chunk."""
    out = tmp_path_factory.mktemp("ckpt")
    original, calls = RunCheckpoint.save_chunk, {"n": 0}

    def kill(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    RunCheckpoint.save_chunk = kill
    try:
        with pytest.raises(RunInterrupted):
            run(tiny(), out)
    finally:
        RunCheckpoint.save_chunk = original
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite_tensors(path, change):
    t = {k: v.clone() for k, v in load_tensors(path).items()}
    change(t)
    save_tensors(path, t)


def _unhashed(folder):
    """Drop the manifest so a check behind the checksum can be reached (as with a folder from before it)."""
    meta = json.loads((folder / "model.json").read_text())
    meta.pop("files")
    atomic_write_json(folder / "model.json", meta)


def test_model_round_trip_and_checksums(model_dir, tmp_path):
    meta = json.loads((model_dir / "model.json").read_text())
    assert set(meta["files"]) == {"config.json", "liquid.safetensors", "liquid.json", "readout.safetensors"}
    assert meta["seed"] == CFG.seed
    NALSM.load(model_dir)
    d = _copy(model_dir, tmp_path / "m")
    data = bytearray((d / "readout.safetensors").read_bytes())
    data[-1] ^= 1
    (d / "readout.safetensors").write_bytes(bytes(data))
    with pytest.raises(AstrosnnError, match=r"readout\.safetensors: content does not match its checksum"):
        NALSM.load(d)


@pytest.mark.parametrize("fault, message", [
    ("nan", "liquid.safetensors: weights contain NaN"),
    ("grid", "liquid.safetensors: a 3x3x3 liquid of 27 neurons, but config.json says grid 5x5x5"),
    ("seed", "model.json: seed 7 but config.json has seed 0"),
    ("readout", "readout.safetensors: readout of shape"),
    ("inputs", "model.json: n_inputs 63 does not match"),
])
def test_model_faults_are_one_line(model_dir, tmp_path, fault, message):
    d = _copy(model_dir, tmp_path / "m")
    _unhashed(d)
    if fault == "nan":
        _rewrite_tensors(d / "liquid.safetensors", lambda t: t["weight"].__setitem__(0, float("nan")))
    elif fault == "grid":
        cfg = json.loads((d / "config.json").read_text())
        cfg["liquid"]["grid"] = [5, 5, 5]
        atomic_write_json(d / "config.json", cfg)
    elif fault in ("seed", "inputs"):
        meta = json.loads((d / "model.json").read_text())
        meta["seed" if fault == "seed" else "n_inputs"] = 7 if fault == "seed" else 63
        atomic_write_json(d / "model.json", meta)
    else:
        _rewrite_tensors(d / "readout.safetensors", lambda t: t.__setitem__("readout.weight", torch.zeros(3, 5)))
    with pytest.raises(AstrosnnError, match=message.replace("(", r"\(")) as e:
        NALSM.load(d)
    assert "\n" not in str(e.value)


def test_saving_non_finite_weights_is_refused(model_dir):
    model = NALSM.load(model_dir)
    model.weights[0] = float("inf")
    with pytest.raises(AstrosnnError, match="NaN or infinite"):
        model.save(model_dir.parent / "never")


def _resume(folder):
    return run(tiny(resume=True), folder)


def test_checkpoint_faults_are_one_line(checkpoint_dir, tmp_path):
    # negative counts behind a matching checksum (as a buggy writer would leave them)
    d = _copy(checkpoint_dir, tmp_path / "neg")
    ck = d / "checkpoint"
    path = ck / "train-00000020.safetensors"
    _rewrite_tensors(path, lambda t: t["counts"].__setitem__((0, 0), -3))
    state = json.loads((ck / "state.json").read_text())
    from astrosnn.nalsm.checkpoint import sha256_file

    state["files"][path.name] = sha256_file(path)
    atomic_write_json(ck / "state.json", state)
    with pytest.raises(AstrosnnError, match="train-00000020.safetensors: counts must be finite non-negative"):
        _resume(d)

    # a liquid from another run (another seed), checksums recomputed
    d = _copy(checkpoint_dir, tmp_path / "other")
    ck = d / "checkpoint"
    other = tmp_path / "other-run"
    run(RunConfig(**{**tiny().__dict__, "config": CFG.override({"seed": 5})}), other)
    for name in ("config.json", "model.json", "liquid.safetensors", "liquid.json", "readout.safetensors"):
        shutil.copy(other / name, ck / name)
    state = json.loads((ck / "state.json").read_text())
    for name in ("config.json", "model.json", "liquid.safetensors", "liquid.json"):
        state["files"][name] = sha256_file(ck / name)
    atomic_write_json(ck / "state.json", state)
    with pytest.raises(AstrosnnError, match=r"config\.json: the saved liquid is of another run \(.*seed"):
        _resume(d)

    # the same swap without touching state.json: the checksum catches it
    d = _copy(checkpoint_dir, tmp_path / "swap")
    shutil.copy(other / "liquid.safetensors", d / "checkpoint" / "liquid.safetensors")
    with pytest.raises(AstrosnnError, match="liquid.safetensors: content does not match its checksum"):
        _resume(d)


def test_fuzzed_checkpoint_files_fail_cleanly(checkpoint_dir, tmp_path, fuzz):
    """Damaged checkpoint files stop a resume with one line (or, for a no-op edit, resume normally)."""
    rng = random.Random(0)
    names = ["state.json", "liquid.safetensors", "model.json", "train-00000000.safetensors",
             "train-00000020.safetensors", "config.json"]
    for k in range(12):
        d = _copy(checkpoint_dir, tmp_path / f"f{k}")
        path = d / "checkpoint" / names[k % len(names)]
        _, mutated = fuzz.mutate(path.read_bytes(), rng)
        path.write_bytes(mutated)
        try:
            metrics = _resume(d)
        except AstrosnnError as e:
            assert "\n" not in str(e) and str(d) in str(e), str(e)
        else:  # every other file is checksummed: only a harmless edit of state.json itself may pass
            assert path.name == "state.json" and metrics["test_accuracy"] is not None


def test_fuzzed_model_files_fail_cleanly(model_dir, tmp_path, fuzz):
    rng = random.Random(1)
    names = ["model.json", "config.json", "liquid.safetensors", "liquid.json", "readout.safetensors"]
    for k in range(15):
        d = _copy(model_dir, tmp_path / f"m{k}")
        path = d / names[k % len(names)]
        _, mutated = fuzz.mutate(path.read_bytes(), rng)
        path.write_bytes(mutated)
        try:
            NALSM.load(d)
        except AstrosnnError as e:
            assert "\n" not in str(e) and str(d) in str(e), str(e)
        else:
            assert path.name == "model.json"  # the manifest itself: only harmless edits load


@pytest.mark.parametrize("args, message", [
    (["--lsm-weight", "1e39"], "outside float32"),
    (["--lsm-weight", "1e-50"], "outside float32"),
    (["--astro-weight", "1e39"], "outside float32"),
    (["--bf-samples", "0"], "--bf-samples must be >= 1"),
    (["--seed", str(10**23)], "--seed must be in"),
    (["--neurons", "1000000000"], "too large"),
    (["--dataset", "nmnist", "--kernel-quality", "2"], "--kernel-quality"),
    (["--phase2-traces", "keep"], "--phase2-traces"),
    (["--phase1-checkpoint-every", "0"], "--phase1-checkpoint-every"),
])
def test_bad_options_fail_before_any_work(args, message, capsys):
    assert main(["nalsm", "train", "--quiet", "--out", "/nonexistent-never-created", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error:") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only"])
def test_unwritable_out_fails_before_any_work(tmp_path, kind, capsys, monkeypatch):
    import astrosnn.nalsm.job as job

    monkeypatch.setattr(job, "load_splits", lambda rc: pytest.fail("loaded data before checking --out"))
    f = tmp_path / "f"
    f.write_text("x")
    if kind == "read-only":
        import os

        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "run"
    else:
        out = f if kind == "file" else f / "run"
    assert main(["nalsm", "train", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error:") and "output folder" in err and err.count("\n") == 1


def test_weights_representable_in_float32():
    with pytest.raises(AstrosnnError, match="liquid.lsm_weight"):
        NALSMConfig().override({"liquid.lsm_weight": 1e39})
    assert np.float32(NALSMConfig().override({"liquid.lsm_weight": 1e30}).liquid.lsm_weight) == np.float32(1e30)


def test_a_second_run_in_a_live_runs_folder_is_refused(tmp_path):
    """The run folder is locked while a run lives; a second run into it refuses and writes nothing."""
    from astrosnn.rundir import RunDirBusy, lock_run_dir

    out = tmp_path / "busy"
    out.mkdir()
    with lock_run_dir(out):  # a live holder (this process, through another open file description)
        with pytest.raises(RunDirBusy, match="in use by process"):
            run(tiny(), out)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert run(tiny(), out)["test_accuracy"] >= 0  # once released, the folder can be used
