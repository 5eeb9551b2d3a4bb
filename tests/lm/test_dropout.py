"""Dropout in every LM: off in evaluation (same logits as without it), on in training, bad rates refused."""

from __future__ import annotations

import json

import pytest
import torch

from astrosnn.cli import main
from astrosnn.errors import AstrosnnError
from astrosnn.lm import build_model, model_kinds

MODEL_KINDS = model_kinds()

SMALL = {"width": 24, "layers": 2, "heads": 4, "seq_len": 16}



def twins(kind: str, rate: float):
    """A model with dropout `rate` and one without, holding the same weights."""
    torch.manual_seed(0)
    with_dropout = build_model(kind, 11, dropout=rate, **SMALL).double()
    plain = build_model(kind, 11, **SMALL).double()
    plain.load_state_dict(with_dropout.state_dict())
    return with_dropout, plain


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_dropout_is_off_in_evaluation(kind):
    model, plain = twins(kind, 0.5)
    ids = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(1))
    model.eval()
    plain.eval()
    assert torch.equal(model(ids)[0], plain(ids)[0])


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_dropout_changes_training_forward(kind):
    model, plain = twins(kind, 0.5)
    ids = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(1))
    model.train()
    plain.train()
    torch.manual_seed(2)
    first = model(ids)[0]
    torch.manual_seed(3)
    second = model(ids)[0]
    assert not torch.allclose(first, second)  # a fresh mask per call
    torch.manual_seed(2)
    assert torch.equal(plain(ids)[0], plain(ids)[0])  # without dropout the training forward is deterministic


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), "0.2", True])
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_bad_dropout_rate_is_a_clear_error(kind, rate):
    with pytest.raises(AstrosnnError, match="dropout must be a number in"):
        build_model(kind, 11, dropout=rate, **SMALL)


def test_cli_dropout_reaches_the_saved_model_config(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abcdefgh " * 200)
    out = tmp_path / "run"
    argv = ["lm", "train", "--corpus", str(text), "--model", "lstm", "--width", "16", "--layers", "2",
            "--seq-len", "8", "--batch-size", "2", "--steps", "2", "--dropout", "0.25", "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["model_config"]["dropout"] == 0.25
    assert main([*argv[:-5], "--dropout", "1.5", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "dropout must be a number in [0, 1), got 1.5" in capsys.readouterr().err
