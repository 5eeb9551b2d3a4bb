import json

import numpy as np
import pytest

from astrosnn.cli import main
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.model import NALSM
from astrosnn.nalsm.topology import Network
from astrosnn.runinfo import load_tensors

TINY = ["--grid", "4x4x4", "--phase1-samples", "40", "--limit", "300", "--val-limit", "100",
        "--test-limit", "100", "--epochs", "400", "--patience", "150", "--bf-samples", "5", "--quiet"]


def test_train_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["nalsm", "train", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "branching factor" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "digits" and m["variant"] == "nalsm" and m["seed"] == 0
    assert m["test_accuracy"] > 0.25 and m["validation_accuracy"] > 0.25  # chance is 0.1
    assert 0 < m["branching_factor"] < 5 and len(m["branching_factor_per_sample"]) == 5
    assert m["mean_firing_rate_hz"] > 0 and m["readout_engine"] == "fused"
    assert m["sizes"] == {"train": 300, "validation": 100, "test": 100, "phase1": 40}
    for key in ("phase1", "phase2_train", "phase2_val", "phase2_test", "readout", "total"):
        assert m["wall_time_s"][key] >= 0
    assert m["samples_per_s"]["phase2"] > 0 and m["network"]["n_liquid"] == 64
    assert "torch" in m["versions"] and m["config"]["liquid"]["grid"] == [4, 4, 4]
    cfg = NALSMConfig.from_json(out / "config.json")
    assert cfg.liquid.grid == (4, 4, 4) and cfg.protocol.phase1_samples == 40
    assert Network.load(out / "liquid.safetensors").n_liquid == 64
    assert load_tensors(out / "readout.safetensors")["readout.weight"].shape == (10, 64)
    for plot in ("raster.png", "branching.png", "learning_curves.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    model = NALSM.load(out)
    from astrosnn.data.images import load_images

    te = load_images("digits", "test", limit=100)
    assert model.score(te.images, te.labels) > 0.25


def test_lsm_with_ridge_and_kernel_quality(tmp_path):
    out = tmp_path / "lsm"
    args = ["nalsm", "train", *TINY, "--variant", "lsm", "--lsm-weight", "1.0", "--readout", "ridge",
            "--kernel-quality", "4", "--no-plots", "--save-features", "--out", str(out)]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["variant"] == "lsm" and m["readout"] == "ridge" and m["sizes"]["phase1"] == 0
    assert m["config"]["liquid"]["lsm_weight"] == 1.0 and m["plots"] == []
    kq = m["kernel_quality"]
    assert 1 <= kq["separation_rank"] <= 40 and 1 <= kq["generalization_rank"] <= 40
    assert np.isfinite(m["test_accuracy"])
    feats = load_tensors(out / "features.safetensors")
    assert feats["train.counts"].shape == (300, 64) and feats["test.labels"].shape == (100,)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar"], "unknown dataset"),
    (["--variant", "esn"], "unknown variant"),
    (["--grid", "0x4x4"], "--grid"),
    (["--grid", "4x4"], "--grid"),
    (["--neurons", "0"], "--neurons"),
    (["--phase1-samples", "-1"], "--phase1-samples"),
    (["--limit", "-5"], "--limit"),
    (["--readout", "svm"], "unknown readout"),
    (["--config", "/nonexistent/cfg.json"], "file not found"),
])
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    assert main(["nalsm", "train", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error:") and message in err
    assert err.count("\n") == 1


def test_data_folder_without_the_dataset(tmp_path, capsys):
    rc = main(["nalsm", "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download",
               "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error:") and "mnist" in err and str(tmp_path) in err
    assert err.count("\n") == 1


def test_preset_variant_is_kept_unless_overridden():
    from astrosnn.cli import build_parser
    from astrosnn.commands.nalsm import build_config

    parse = build_parser().parse_args
    assert build_config(parse(["nalsm", "train", "--preset", "lsm1000"])).variant == "lsm"
    assert build_config(parse(["nalsm", "train", "--preset", "lsm1000", "--variant", "nalsm"])).variant == "nalsm"
    assert build_config(parse(["nalsm", "train"])).variant == "nalsm"
    cfg = build_config(parse(["nalsm", "train", "--neurons", "8000", "--batch-size", "50"]))
    assert cfg.liquid.grid == (20, 20, 20) and cfg.protocol.batch_size == cfg.readout.batch_size == 50


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, capsys):
    from astrosnn.nalsm.checkpoint import RunCheckpoint

    opts = ["nalsm", "train", *TINY, "--batch-size", "50", "--checkpoint-every", "1", "--no-plots",
            "--save-features"]
    whole = tmp_path / "whole"
    assert main([*opts, "--out", str(whole)]) == 0
    assert not (whole / "checkpoint").exists()  # removed once the outputs are written

    calls = {"n": 0}
    save_chunk = RunCheckpoint.save_chunk

    def interrupt_after_three(self, *args):
        save_chunk(self, *args)
        calls["n"] += 1
        if calls["n"] == 3:  # mid-way through the 6 training batches
            raise KeyboardInterrupt

    parted = tmp_path / "parted"
    monkeypatch.setattr(RunCheckpoint, "save_chunk", interrupt_after_three)
    assert main([*opts, "--out", str(parted)]) == 130
    assert "--resume" in capsys.readouterr().err
    state = json.loads((parted / "checkpoint" / "state.json").read_text())
    assert state["phase1_done"] and [c[0] for c in state["chunks"]["train"]] == [0, 50, 100]
    monkeypatch.setattr(RunCheckpoint, "save_chunk", save_chunk)
    assert main([*opts, "--resume", "--out", str(parted)]) == 0

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, parted))
    assert b["resumed"] and not a["resumed"]
    for key in ("test_accuracy", "validation_accuracy", "best_epoch", "branching_factor", "mean_firing_rate_hz"):
        assert a[key] == b[key], key
    fa, fb = (load_tensors(d / "features.safetensors") for d in (whole, parted))
    for key in fa:
        assert np.array_equal(fa[key].numpy(), fb[key].numpy()), key
    assert not (parted / "checkpoint").exists()


def test_resume_refuses_a_missing_or_different_checkpoint(tmp_path, monkeypatch, capsys):
    from astrosnn.nalsm.checkpoint import RunCheckpoint

    out = tmp_path / "run"
    assert main(["nalsm", "train", *TINY, "--no-plots", "--resume", "--out", str(out)]) == 2
    assert "no checkpoint" in capsys.readouterr().err

    def interrupt(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "save_chunk", interrupt)
    assert main(["nalsm", "train", *TINY, "--no-plots", "--out", str(out)]) == 130
    capsys.readouterr()
    assert main(["nalsm", "train", *TINY, "--no-plots", "--out", str(out)]) == 2  # would lose the work
    assert "add --resume" in capsys.readouterr().err
    assert main(["nalsm", "train", *TINY, "--no-plots", "--seed", "3", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "config.seed" in err
