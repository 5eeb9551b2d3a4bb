"""Model-size presets, `lm plan`, `lm train --preset`, and the prepared GPU check script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from astrosnn.cli import main
from astrosnn.errors import AstrosnnError
from astrosnn.lm.presets import (
    PRESETS,
    estimate,
    format_plan,
    get_preset,
    model_options,
    parameters,
    plan,
)
from astrosnn.lm.registry import build_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_has_about_the_parameters_its_name_says(name):
    p = get_preset(name)
    n = parameters(p)  # meta device: no memory even for 1.5B
    assert abs(n - p.nominal) / p.nominal < 0.15, (name, n)
    assert p.width % p.heads == 0


def test_unknown_preset_is_one_line():
    with pytest.raises(AstrosnnError, match="unknown preset 'astrosnn-7b' \\(choose from astrosnn-1m"):
        get_preset("astrosnn-7b")


def test_plan_formulas():
    p = get_preset("astrosnn-125m")
    one, eight = estimate(p, 50257, 1, 1024, 8), estimate(p, 50257, 8, 1024, 8)
    n = one["parameters"]
    assert one["ddp_bytes"] == 16 * n + one["activation_bytes"]
    assert eight["fsdp_bytes"] < one["fsdp_bytes"] and eight["ddp_bytes"] == one["ddp_bytes"]
    ckpt = estimate(p, 50257, 1, 1024, 8, activation_checkpointing=True)
    assert ckpt["activation_bytes"] < one["activation_bytes"] / 2
    assert 6 * n <= one["flops_per_token"] < 7 * n
    text = format_plan(plan("astrosnn-1.5b", nproc=8, measure=False))
    assert "parameters: 1,479," in text and "FSDP" in text and "FLOPs per token" in text


def test_plan_command_measures_tokens_per_second(capsys):
    assert main(["lm", "plan", "--preset", "astrosnn-1m", "--nproc", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 1,100,032 (vocabulary 65" in out and "tokens/s forward+backward" in out
    assert main(["lm", "plan", "--preset", "nope", "--no-measure"]) == 2


@pytest.mark.slow
def test_125m_preset_does_forward_and_backward_on_cpu():
    p = get_preset("astrosnn-125m")
    state = torch.get_rng_state()
    torch.manual_seed(0)
    model = build_model("astrosnn", 50257, **model_options(p))
    torch.set_rng_state(state)
    assert sum(t.numel() for t in model.parameters()) == parameters(p)
    ids = torch.randint(0, 50257, (1, 33), generator=torch.Generator().manual_seed(0))
    logits, _ = model(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 50257), ids[:, 1:].reshape(-1))
    loss.backward()
    assert torch.isfinite(loss) and all(q.grad is not None for q in model.blocks[-1].parameters())


def test_train_with_a_preset_and_refuse_another_presets_checkpoint(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    out = tmp_path / "run"
    args = ["lm", "train", "--corpus", str(text), "--out", str(out), "--seq-len", "8", "--batch-size", "2",
            "--steps", "2", "--threads", "1", "--quiet"]  # fmt: skip
    assert main([*args, "--preset", "astrosnn-1m", "--stop-at-step", "1"]) == 0
    config = (out / "config.json").read_text()
    assert '"width": 144' in config and '"preset": "astrosnn-1m"' in config
    capsys.readouterr()
    assert main([*args, "--preset", "astrosnn-10m", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "preset astrosnn-1m, not astrosnn-10m" in err
    assert main([*args, "--preset", "astrosnn-1m", "--width", "8"]) == 2
    assert "drop --width" in capsys.readouterr().err


def test_gpu_check_script_is_valid_bash():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert script.is_file()
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(script)], check=True)
