"""`astrosnn lm train | generate | plot` end to end on tiny runs; every bad input exits 2 with one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from astrosnn.cli import main
from astrosnn.runinfo import json_sha256

pytestmark = pytest.mark.usefixtures("one_torch_thread")







def test_train_writes_metrics_and_checkpoint(lm_run, capsys):
    _, _, out = lm_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["steps"] == 6 and metrics["model"] == "lstm"
    assert metrics["final_validation"]["bits_per_char"] > 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["kind"] == "lstm"
    assert metrics["config"]["threads"] is None and metrics["config"]["eval_tokens"] == 8192  # defaults kept
    assert metrics["versions"]["torch_threads"] == str(torch.get_num_threads())  # the count it ran with


def test_generate_streams_a_reproducible_sample(lm_run, capsys):
    _, text, out = lm_run
    argv = ["lm", "generate", "--checkpoint", str(out), "--prompt", "to be", "--max-new-tokens", "25", "--seed", "4"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("to be") and len(first.rstrip("\n")) == len("to be") + 25
    assert set(first) <= set(text.read_text()) | {"\n"}
    assert main(argv) == 0
    assert capsys.readouterr().out == first


def test_resume_extends_a_run(lm_run, tmp_path, capsys):
    _, _, out = lm_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["lm", "train", "--resume", "--out", str(copy), "--steps", "9", "--quiet"]) == 0
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["steps"] == 9 and len(metrics["train_loss"]) == 9
    original = json.loads((out / "metrics.json").read_text())
    assert metrics["train_loss"][:6] == original["train_loss"]


def test_astrosnn_trains_and_generates_from_the_cli(lm_run, tmp_path, capsys):
    _, text, _ = lm_run
    out = tmp_path / "astro"
    assert main(["lm", "train", "--corpus", str(text), "--width", "16", "--layers", "1", "--heads", "2",
                 "--seq-len", "16", "--batch-size", "2", "--steps", "3", "--out", str(out), "--quiet"]) == 0
    assert "validation bits per char" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["kind"] == "astrosnn"
    assert main(["lm", "generate", "--checkpoint", str(out), "--prompt", "the ", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("the ")


def test_model_options_pass_through_set(lm_run, tmp_path, capsys, one_line_error):
    _, text, _ = lm_run
    out = tmp_path / "ablation"
    assert main(["lm", "train", "--corpus", str(text), "--width", "16", "--layers", "1", "--heads", "2",
                 "--seq-len", "16", "--batch-size", "2", "--steps", "1", "--out", str(out), "--quiet",
                 "--set", "token_shift=false", "--set", "norm=denominator"]) == 0
    config = json.loads((out / "config.json").read_text())["model_config"]
    assert config["amsu"]["token_shift"] is False and config["amsu"]["norm"] == "denominator"
    capsys.readouterr()
    one_line_error(["lm", "train", "--corpus", str(text), "--steps", "1", "--out", str(tmp_path / "y"),
                            "--set", "colour=red"], "unknown option", "colour")
    one_line_error(["lm", "train", "--corpus", str(text), "--steps", "1", "--set", "colour"], "KEY=VALUE")


def test_clock_trains_and_generates_from_the_cli(lm_run, tmp_path, capsys):
    _, text, _ = lm_run
    out = tmp_path / "clock"
    args = ["lm", "train", "--corpus", str(text), "--width", "16", "--layers", "1", "--heads", "2",
            "--seq-len", "16", "--batch-size", "2", "--out", str(out), "--quiet", "--set", "clock=4"]
    assert main([*args, "--steps", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["model_config"]["amsu"]["clock"] == 4
    capsys.readouterr()
    assert main(["lm", "generate", "--checkpoint", str(out), "--prompt", "the ", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("the ")


def test_plot_learning_curves(lm_run, tmp_path, capsys):
    _, _, out = lm_run
    png = tmp_path / "curves.png"
    assert main(["lm", "plot", str(out), str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_inputs_exit_2_with_one_line(lm_run, tmp_path, capsys, one_line_error):
    root, text, out = lm_run
    one_line_error(["lm", "train", "--corpus", "nosuchcorpus", "--model", "lstm", "--steps", "1",
                            "--out", str(tmp_path / "x")], "nosuchcorpus")
    one_line_error(["lm", "train", "--corpus", str(text), "--model", "gru", "--steps", "1"], "unknown model 'gru'")
    one_line_error(["lm", "generate", "--checkpoint", str(out), "--prompt", "to bé?Q"],
                   "'?'", "'Q'", "'é'")
    one_line_error(["lm", "generate", "--checkpoint", str(out), "--prompt", ""], "empty")
    one_line_error(["lm", "generate", "--checkpoint", str(tmp_path / "missing"), "--prompt", "to"], "no such folder")
    trunc = tmp_path / "trunc"
    shutil.copytree(out, trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[:100])
    one_line_error(["lm", "generate", "--checkpoint", str(trunc), "--prompt", "to"], "model.safetensors")
    other = tmp_path / "other"
    shutil.copytree(out, other)
    config = json.loads((other / "config.json").read_text())
    config["kind"], config["model_config"] = "transformer", {"vocab_size": len(config["vocab"]), "width": 16, "heads": 2, "layers": 1}
    del config["config_sha256"]
    config["config_sha256"] = json_sha256(config)  # a consistent config.json that does not fit the weights
    (other / "config.json").write_text(json.dumps(config))
    one_line_error(["lm", "generate", "--checkpoint", str(other), "--prompt", "to"], "do not fit a transformer model")
    one_line_error(["lm", "train", "--resume", "--out", str(tmp_path / "nothing")], "cannot resume")


def test_real_corpora_load_through_the_cli(shared_data, tmp_path, capsys):
    out = tmp_path / "ts"
    assert main(["lm", "train", "--corpus", "tinyshakespeare", "--data-dir", str(shared_data), "--model", "lstm",
                 "--width", "16", "--layers", "1", "--seq-len", "64", "--batch-size", "64", "--steps", "2",
                 "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["corpus"]["name"] == "tinyshakespeare" and metrics["corpus"]["vocab_size"] == 65
    assert metrics["corpus"]["train_tokens"] == int(1115394 * 0.9)
