"""Training with several processes (torchrun, gloo on CPU): DDP and FSDP2 against one process with the same
global batch, gradient accumulation, activation checkpointing, resume after a kill, a checkpoint written by two
processes resumed in one, and the one-line refusals.

Tolerance: the loss curves of 2 processes and of 1 process with the same global batch agree to 1e-5 relative
(float32 all-reduce sums in another order; measured about 2e-7 for DDP and 1e-7 for FSDP2). A run resumed after a
kill on the same number of processes repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from astrosnn.data.text import default_text
from astrosnn.data.tokens import prepare_corpus
from astrosnn.errors import AstrosnnError
from astrosnn.lm import TrainConfig, build_model, train
from astrosnn.lm.distributed import DistEnv, activation_checkpointing, batch_plan

REL_TOL = 1e-5
SMALL = dict(width=16, layers=2, heads=4, seq_len=16, steps=6, eval_every=3, eval_tokens=512, lr=5e-3, seed=3)
CLI = ["--width", "16", "--layers", "2", "--heads", "4", "--seq-len", "16", "--steps", "6", "--eval-every", "3",
       "--eval-tokens", "512", "--lr", "5e-3", "--seed", "3", "--threads", "1", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A prepared character corpus (token files read through np.memmap)."""
    root = tmp_path_factory.mktemp("dist")
    text = root / "text.txt"
    text.write_text(default_text()[:60_000], encoding="utf-8")
    prepare_corpus(text, root / "tokens", tokenizer="char")
    return root / "tokens"


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """One process, batch 4: the curve every split of the same global batch must give."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return train(TrainConfig(corpus=str(folder), batch_size=4, out=str(out), threads=1, **SMALL), progress=False,
                 log=lambda *_: None)  # fmt: skip


def _torchrun(*args: str, nproc: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = Path(__file__).resolve().parents[2] / "src"
    if (src / "astrosnn").is_dir():  # this checkout, whether or not it is the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "astrosnn", "lm", "train", *args]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def _max_rel(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) / abs(x) for x, y in zip(a, b))


def _same_curve(got: dict, ref: dict) -> None:
    assert _max_rel(got["train_loss"], ref["train_loss"]) < REL_TOL
    for v, w in zip(got["validation"], ref["validation"]):
        assert v["step"] == w["step"] and abs(v["loss"] - w["loss"]) / w["loss"] < REL_TOL


# ------------------------------------------------------------------------------- one process, no torchrun


def test_world_size_must_divide_the_global_batch(folder, tmp_path):
    with pytest.raises(AstrosnnError) as e:
        batch_plan(6, 2, 4)
    assert "\n" not in str(e.value) and "global batch of 6" in str(e.value) and "8 = world size" in str(e.value)
    assert batch_plan(8, 2, 2) == (8, 2) and batch_plan(None, 3, 2) == (6, 1)
    # refused before any work: no process group, no folder
    cfg = TrainConfig(corpus=str(folder), batch_size=2, global_batch=5, out=str(tmp_path / "run"), **SMALL)
    with pytest.raises(AstrosnnError, match="does not divide into 2 process"):
        train(cfg, env=DistEnv(rank=0, world_size=2), progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_indivisible_global_batch_in_one_line(folder, tmp_path, monkeypatch, capsys):
    from astrosnn.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code = main(["lm", "train", "--corpus", str(folder), "--out", str(tmp_path / "r"), "--batch-size", "2",
                 "--global-batch", "6", *CLI])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "global batch of 6" in err


def test_gradient_accumulation_matches_the_whole_batch(folder, reference, tmp_path):
    got = train(TrainConfig(corpus=str(folder), batch_size=2, global_batch=4, out=str(tmp_path / "acc"), threads=1,
                            **SMALL), progress=False, log=lambda *_: None)  # fmt: skip
    _same_curve(got, reference)
    assert got["distributed"]["accumulation"] == 2 and got["tokens"] == reference["tokens"]


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = build_model("astrosnn", 11, width=16, layers=2, heads=4)
        if ckpt:
            activation_checkpointing(model)
        ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
        logits, _ = model(ids[:, :-1])
        torch.nn.functional.cross_entropy(logits.reshape(-1, 11), ids[:, 1:].reshape(-1)).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        assert torch.equal(grads[0][k], grads[1][k]), k


def test_bf16_needs_cuda(folder, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: bf16 is allowed")
    cfg = TrainConfig(corpus=str(folder), batch_size=4, precision="bf16", out=str(tmp_path / "r"), **SMALL)
    with pytest.raises(AstrosnnError, match="bf16 .* needs a CUDA device"):
        train(cfg, progress=False)
    with pytest.raises(AstrosnnError, match="unknown parallel mode 'zero'"):
        TrainConfig(parallel="zero")


# --------------------------------------------------------------------------------- two processes (torchrun)


@pytest.mark.slow
def test_ddp_two_processes_match_one_and_resume_exactly(folder, reference, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    common = ["--corpus", str(folder), "--batch-size", "2", *CLI]
    _torchrun(*common, "--out", str(whole))
    got = _metrics(whole)
    _same_curve(got, reference)
    assert got["distributed"] == {"world_size": 2, "parallel": "ddp", "global_batch": 4, "accumulation": 1,
                                  "micro_batch": 2, "precision": "fp32"}  # fmt: skip
    # killed after step 3 (the checkpoint of an interruption), then resumed on the same 2 processes
    _torchrun(*common, "--out", str(killed), "--stop-at-step", "3")
    assert _metrics(killed)["steps"] == 3 and not _metrics(killed)["finished"]
    _torchrun(*common, "--out", str(killed), "--resume")
    resumed = _metrics(killed)
    assert resumed["train_loss"] == got["train_loss"]  # step for step, exactly
    assert [v["loss"] for v in resumed["validation"]] == [v["loss"] for v in got["validation"]]
    # the final model folder is the one-process format: lm generate reads it
    from astrosnn.cli import main
    from astrosnn.lm import load_checkpoint

    assert load_checkpoint(whole).step == 6
    # the distributed checkpoint exported as one safetensors folder
    assert main(["lm", "export-checkpoint", "--run", str(whole), "--to", str(tmp_path / "export")]) == 0
    exported = load_checkpoint(tmp_path / "export")
    for k, v in load_checkpoint(whole).model.state_dict().items():
        assert torch.equal(v, exported.model.state_dict()[k])


@pytest.mark.slow
def test_fsdp_checkpoint_of_two_processes_resumes_in_one(folder, reference, tmp_path):
    out = tmp_path / "fsdp"
    # FSDP2 (fully_shard per block), micro-batches of 1 accumulated to the global batch of 4, activation checkpointing
    _torchrun("--corpus", str(folder), "--batch-size", "1", "--global-batch", "4", "--parallel", "fsdp",
              "--activation-checkpointing", *CLI, "--out", str(out), "--stop-at-step", "3")  # fmt: skip
    first = _metrics(out)
    assert first["steps"] == 3 and first["distributed"]["parallel"] == "fsdp"
    assert _max_rel(first["train_loss"], reference["train_loss"][:3]) < REL_TOL
    manifest = json.loads((out / "checkpoint" / "manifest.json").read_text())
    assert manifest["layout"] == "dcp" and any(f.startswith("dcp/") for f in manifest["files"])
    # a copy, damaged: the manifest's hash of a shard file refuses it in one line
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    shard = next((bad / "checkpoint" / manifest["folder"] / "dcp").glob("*.distcp"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    cfg = TrainConfig(corpus=str(folder), batch_size=4, out=str(bad), threads=1, **SMALL)
    with pytest.raises(AstrosnnError, match="differs from the checksum") as e:
        train(cfg, resume=True, progress=False, log=lambda *_: None)
    assert "\n" not in str(e.value)
    # one process, the whole global batch in one micro-batch: the curve of the one-process run
    cfg = TrainConfig(corpus=str(folder), batch_size=4, out=str(out), threads=1, **SMALL)
    got = train(cfg, resume=True, progress=False, log=lambda *_: None)
    assert got["train_loss"][:3] == first["train_loss"]
    _same_curve(got, reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_and_runs_in_bf16(folder, reference, tmp_path):
    """On a GPU (benchmarks/gpu_check.sh): fp32 on CUDA follows the CPU curve; bf16 autocast trains."""
    fp32 = train(TrainConfig(corpus=str(folder), batch_size=4, precision="fp32", out=str(tmp_path / "fp32"), **SMALL),
                 progress=False, log=lambda *_: None)  # fmt: skip
    assert _max_rel(fp32["train_loss"], reference["train_loss"]) < 1e-3
    bf16 = train(TrainConfig(corpus=str(folder), batch_size=2, global_batch=4, precision="bf16",
                             activation_checkpointing=True, out=str(tmp_path / "bf16"), **SMALL),
                 progress=False, log=lambda *_: None)  # fmt: skip
    assert _max_rel(bf16["train_loss"], reference["train_loss"]) < 5e-2
    assert bf16["distributed"]["precision"] == "bf16"
