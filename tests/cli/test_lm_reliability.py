"""`astrosnn lm` refuses bad options, busy or unwritable run folders and changed options on resume: one line each."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from astrosnn.cli import main
from astrosnn.lm.checkpoint import load_checkpoint
from astrosnn.rundir import RunDirBusy, run_dir
from astrosnn.runinfo import sha256_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")







@pytest.mark.parametrize("argv, needle", [
    (["--seed", "1e23"], "--seed: must be an integer in [0, 2**63-1], got 1e23"),
    (["--seed", "-1"], "--seed: must be an integer"),
    (["--seed", "2.5"], "--seed: expected a whole number"),
    (["--threads", "100000"], "--threads: must be an integer in [1, "),
    (["--time-budget", "inf"], "--time-budget: must be a finite number"),
    (["--time-budget", "0"], "--time-budget: must be in (0, "),
    (["--steps", "0"], "--steps: must be an integer in [1, "),
    (["--steps", "99999999999999999999999"], "--steps: must be an integer in [1, "),
    (["--width", "100000000"], "--width: must be an integer in [1, "),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--lr", "0"], "--lr: must be in (0, 10]"),
    (["--dropout", "1"], "dropout must be a number in [0, 1)"),
    (["--dropout", "nan"], "dropout must be a number in [0, 1)"),
    (["--batch-size", "x"], "--batch-size: expected a whole number"),
    (["--set", "vocab_size=5"], "vocab_size is not an option"),
    (["--set", "dropout=1e999"], "--set dropout"),
    (["--width", "65536", "--layers", "1024"], "above the limit of 2,000,000,000"),
])
def test_train_options_are_bounded(lm_run, tmp_path, capsys, argv, needle, one_line_error):
    _, text, _ = lm_run
    one_line_error(["lm", "train", "--corpus", str(text), "--model", "lstm", "--steps", "1", *argv,
                            "--out", str(tmp_path / "x")], needle)
    assert not (tmp_path / "x" / "metrics.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--temperature", "nan"], "--temperature: must be a finite number"),
    (["--temperature", "-1"], "--temperature: must be in [0, 100]"),
    (["--top-k", "0"], "--top-k: must be an integer"),
    (["--max-new-tokens", "-5"], "--max-new-tokens: must be an integer"),
    (["--seed", "1e30"], "--seed: must be an integer"),
    (["--threads", "0"], "--threads: must be an integer"),
])
def test_generate_options_are_bounded(lm_run, capsys, argv, needle, one_line_error):
    _, _, out = lm_run
    one_line_error(["lm", "generate", "--checkpoint", str(out), "--prompt", "to", *argv], needle)


def test_out_that_is_a_file_under_a_file_or_read_only(lm_run, tmp_path, capsys, one_line_error, tiny_lm_options):
    _, text, _ = lm_run
    f = tmp_path / "file"
    f.write_text("x")
    base = ["lm", "train", "--corpus", str(text), *tiny_lm_options, "--steps", "1"]
    one_line_error([*base, "--out", str(f)], "exists and is not a folder")
    one_line_error([*base, "--out", str(f / "sub" / "run")], "is a file, not a folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            one_line_error([*base, "--out", str(ro)], "not writable")
        finally:
            ro.chmod(0o755)


def test_a_busy_folder_is_refused_without_resume_advice(lm_run, tmp_path, capsys, one_line_error, tiny_lm_options):
    _, text, out = lm_run
    busy = tmp_path / "busy"
    with run_dir(busy):
        err = one_line_error(["lm", "train", "--corpus", str(text), *tiny_lm_options, "--steps", "1",
                                      "--out", str(busy)], f"is in use by process {os.getpid()}")
        assert "--resume" not in err
        with pytest.raises(RunDirBusy):
            with run_dir(busy):
                pass
    assert not (busy / "metrics.json").exists()


def test_a_lock_held_by_another_live_process(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from astrosnn.rundir import run_dir
        with run_dir({str(tmp_path / 'r')!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusy, match=rf"in use by process {p.pid} \(started "):
            with run_dir(tmp_path / "r"):
                pass
    finally:
        p.kill()
        p.wait()
    with run_dir(tmp_path / "r"):  # the holder died: the lock is free again
        pass


def test_files_honour_the_umask(lm_run, tmp_path, tiny_lm_options):
    _, text, _ = lm_run
    old = os.umask(0o022)
    try:
        assert main(["lm", "train", "--corpus", str(text), *tiny_lm_options, "--steps", "1", "--out", str(tmp_path / "u")]) == 0
    finally:
        os.umask(old)
    for name in ("metrics.json", "config.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "u" / name).stat().st_mode) == 0o644, name


def test_resume_refuses_changed_options_from_the_cli(lm_run, tmp_path, capsys, one_line_error):
    root, text, out = lm_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for argv, key in [(["--lr", "0.1"], "lr"), (["--seq-len", "8"], "seq_len"), (["--batch-size", "2"], "batch_size"),
                      (["--seed", "5"], "seed"), (["--width", "32"], "width"), (["--model", "transformer"], "model"),
                      (["--set", "dropout=0.2"], "model_options.dropout"), (["--corpus", "default"], "corpus")]:
        err = one_line_error(["lm", "train", "--resume", "--out", str(copy), *argv, "--quiet"],
                             "cannot resume", f"train_config.{key}")
        assert "Traceback" not in err
    one_line_error(["lm", "train", "--resume", "--out", str(copy), "--steps", "5", "--quiet"],
                   "has done 6 steps, more than steps=5")
    # the same options, given again, are fine; the run's real length is recorded
    assert main(["lm", "train", "--resume", "--out", str(copy), "--lr", str(json.loads(
        (copy / "metrics.json").read_text())["config"]["lr"]), "--steps", "8", "--quiet"]) == 0
    assert json.loads((copy / "metrics.json").read_text())["steps"] == 8


def test_nan_logits_in_sampling_are_one_line(lm_run, tmp_path, capsys, one_line_error):
    _, _, out = lm_run
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    # a checkpoint whose weights are finite but whose logits overflow: NaN/inf only appears while sampling
    tensors = load_file(str(bad / "model.safetensors"))
    name = next(k for k in tensors if k.startswith("head.weight"))
    tensors[name] = torch.full_like(tensors[name], 3e38)
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "astrosnn-lm-checkpoint", "kind": "lstm",
                                                                  "step": "6"})
    config = json.loads((bad / "config.json").read_text())
    config["weights_sha256"] = sha256_file(bad / "model.safetensors")
    from astrosnn.runinfo import json_sha256

    del config["config_sha256"]
    config["config_sha256"] = json_sha256(config)
    (bad / "config.json").write_text(json.dumps(config))
    load_checkpoint(bad)
    one_line_error(["lm", "generate", "--checkpoint", str(bad), "--prompt", "to"], "NaN or infinite logits")
