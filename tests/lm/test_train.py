"""Batching, schedule, training, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from astrosnn.data.text import char_corpus
from astrosnn.errors import AstrosnnError
from astrosnn.lm import TrainConfig, build_model, evaluate, train
from astrosnn.lm.batching import StreamBatcher
from astrosnn.lm.checkpoint import load_checkpoint, save_checkpoint
from astrosnn.lm.training import learning_rate

TEXT = (
    "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
    "all that glitters is not gold. the early bird catches the worm. "
) * 12


@pytest.fixture(scope="module")
def corpus():
    return char_corpus("toy", TEXT, "test")


def small_config(tmp_path, kind="lstm", **kw) -> TrainConfig:
    options = dict(model=kind, width=16, layers=1, heads=2, seq_len=16, batch_size=4, steps=8, eval_every=3,
                   lr=3e-3, out=str(tmp_path / kind), seed=3)
    options.update(kw)
    return TrainConfig(**options)


# ------------------------------------------------------------------------------------------ batching


def test_batches_continue_each_stream():
    ids = np.arange(103)
    b = StreamBatcher(ids, batch_size=4, seq_len=5)
    assert b.streams.shape == (4, 25) and len(b) == 4  # (25 - 1) // 5
    for i in range(len(b) - 1):
        x0, y0 = b.batch(i)
        x1, _ = b.batch(i + 1)
        assert torch.equal(y0, x0 + 1)  # targets are the next tokens
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # the next batch starts where this one stopped
    assert torch.equal(b.batch(0)[0][:, 0], torch.tensor([0, 25, 50, 75]))  # contiguous streams side by side
    assert b.tokens_per_pass == 4 * 4 * 5


def test_batches_without_drop_last_cover_every_token():
    ids = np.arange(50)
    b = StreamBatcher(ids, batch_size=2, seq_len=7, drop_last=False)
    targets = torch.cat([y for _, y in b], dim=1)
    assert torch.equal(targets, torch.stack([torch.arange(1, 25), torch.arange(26, 50)]))
    assert b.tokens_per_pass == targets.numel()


def test_batcher_rejects_too_little_text():
    with pytest.raises(AstrosnnError, match="too few"):
        StreamBatcher(np.arange(20), batch_size=4, seq_len=8)


# ------------------------------------------------------------------------------------------ schedule


def test_warmup_then_cosine_over_steps_and_time():
    cfg = TrainConfig(steps=1000, lr=1.0, warmup_steps=50, min_lr_ratio=0.1)
    lrs = [learning_rate(cfg, s, 0.0) for s in range(1000)]
    assert lrs[0] == pytest.approx(1 / 50) and lrs[49] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[50:], lrs[51:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-4)
    timed = TrainConfig(time_budget=100.0, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(timed, 500, 50.0) == pytest.approx(0.55)
    assert learning_rate(timed, 500, 100.0) == pytest.approx(0.1)


def test_config_validation_names_the_option():
    with pytest.raises(AstrosnnError, match="unknown model 'rnn'"):
        TrainConfig(model="rnn").validate()
    with pytest.raises(AstrosnnError, match="steps or time_budget"):
        TrainConfig(steps=5, time_budget=3.0).validate()
    with pytest.raises(AstrosnnError, match="seq_len"):
        TrainConfig(seq_len=0).validate()
    cfg = TrainConfig()
    cfg.validate()  # pure: checks, changes nothing
    assert cfg.time_budget is None and cfg.normalised().time_budget == 60.0


# ----------------------------------------------------------------------------------- train / resume


def test_training_writes_metrics_and_learns(tmp_path, corpus):
    metrics = train(small_config(tmp_path, steps=30, eval_every=10, width=32), corpus=corpus, progress=False,
                    log=lambda *_: None)
    saved = json.loads((tmp_path / "lstm" / "metrics.json").read_text())
    assert saved["finished"] and saved["steps"] == 30 and len(saved["train_loss"]) == 30
    assert saved["metric"] == "bits_per_char"
    first, final = saved["validation"][0], saved["final_validation"]
    assert final["step"] == 30 and final["bits_per_char"] < first["bits_per_char"]
    assert final["bits_per_char"] == pytest.approx(final["loss"] / math.log(2))
    assert saved["parameters"] == metrics["parameters"] > 0
    assert saved["tokens_per_second"] > 0 and saved["versions"]["torch"] == torch.__version__
    assert saved["best_validation"]["loss"] <= final["loss"]
    assert (tmp_path / "lstm" / "model.safetensors").is_file()
    assert (tmp_path / "lstm" / "config.json").is_file()


def test_small_model_overfits_short_text(tmp_path):
    text = "abcdefgh" * 40
    c = char_corpus("tiny", text, "test")
    cfg = small_config(tmp_path, steps=150, width=32, seq_len=8, batch_size=4, lr=1e-2, eval_every=1000)
    train(cfg, corpus=c, progress=False, log=lambda *_: None)
    saved = json.loads((tmp_path / "lstm" / "metrics.json").read_text())
    assert np.mean(saved["train_loss"][-10:]) < 0.05


@pytest.mark.parametrize("kind", ["lstm", "astrosnn", "transformer"])
def test_resume_continues_the_same_loss_curve(tmp_path, corpus, kind):
    straight = train(small_config(tmp_path / "a", kind), corpus=corpus, progress=False, log=lambda *_: None)
    cfg = small_config(tmp_path / "b", kind)
    half = train(cfg, corpus=corpus, progress=False, stop_at_step=4, log=lambda *_: None)
    assert half["steps"] == 4 and not half["finished"]
    resumed = train(small_config(tmp_path / "b", kind, steps=None), resume=True, corpus=corpus, progress=False,
                    log=lambda *_: None)
    assert resumed["steps"] == 8
    assert resumed["train_loss"] == straight["train_loss"]  # bit-identical
    assert resumed["final_validation"]["loss"] == straight["final_validation"]["loss"]
    a = load_checkpoint(tmp_path / "a" / kind).model.state_dict()
    b = load_checkpoint(tmp_path / "b" / kind).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_errors(tmp_path, corpus):
    with pytest.raises(AstrosnnError, match="does not exist"):
        train(small_config(tmp_path / "none"), resume=True, corpus=corpus, progress=False)
    cfg = small_config(tmp_path)
    train(cfg, corpus=corpus, progress=False, log=lambda *_: None)
    other = char_corpus("other", TEXT.upper(), "test")
    with pytest.raises(AstrosnnError, match="vocabulary differs"):
        train(small_config(tmp_path, steps=10), resume=True, corpus=other, progress=False, log=lambda *_: None)


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("kind", ["astrosnn", "lif-snn", "lstm", "transformer"])
def test_save_load_gives_identical_logits(tmp_path, kind):
    torch.manual_seed(0)
    model = build_model(kind, 9, width=16, layers=2, heads=2, seq_len=16)
    with torch.no_grad():  # move every parameter away from its initial value
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(tmp_path, model, vocab=tuple("abcdefghi"), level="char", step=7)
    loaded = load_checkpoint(tmp_path)
    assert loaded.kind == kind and loaded.step == 7 and loaded.vocab == tuple("abcdefghi")
    ids = torch.randint(0, 9, (2, 12))
    model.eval()
    assert torch.equal(model(ids)[0], loaded.model(ids)[0])


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    lstm = build_model("lstm", 9, width=16, layers=1)
    tf = build_model("transformer", 9, width=16, layers=1, heads=2, seq_len=8)
    save_checkpoint(tmp_path / "lstm", lstm, vocab=tuple("abcdefghi"), level="char")
    save_checkpoint(tmp_path / "tf", tf, vocab=tuple("abcdefghi"), level="char")
    with pytest.raises(AstrosnnError, match="no such folder"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(AstrosnnError, match="holds a lstm model, not transformer"):
        load_checkpoint(tmp_path / "lstm", kind="transformer")
    # weights of another model under this config
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "lstm", mixed)
    shutil.copy(tmp_path / "tf" / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(AstrosnnError, match="do not fit a lstm model"):
        load_checkpoint(mixed)
    # truncated weights
    trunc = tmp_path / "trunc"
    shutil.copytree(tmp_path / "lstm", trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(AstrosnnError, match="not a valid safetensors"):
        load_checkpoint(trunc)
    # not a checkpoint at all
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text('{"hello": 1}')
    with pytest.raises(AstrosnnError, match="not an astrosnn language-model checkpoint"):
        load_checkpoint(tmp_path / "junk")


def test_evaluate_carries_state_over_the_whole_split(corpus):
    torch.manual_seed(0)
    model = build_model("lstm", len(corpus.vocab), width=16, layers=1)
    ids = torch.from_numpy(corpus.encode(corpus.valid))
    loss = evaluate(model, ids, batch_size=1, seq_len=7)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    expected = torch.nn.functional.cross_entropy(logits[0], ids[1:])
    assert loss == pytest.approx(float(expected), rel=1e-5)
