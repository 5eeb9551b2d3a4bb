"""`astrosnn lm prepare` and `lm train --corpus DIR`: token folders, bits per byte, BPE generation, one-line errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from astrosnn.cli import main

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 120
TRAIN = ["--steps", "3", "--batch-size", "2", "--seq-len", "16", "--width", "16", "--threads", "1", "--quiet"]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err


def test_char_folder_trains_like_the_text_file(text, tmp_path, capsys):
    tokens = tmp_path / "tok"
    assert main(["lm", "prepare", "--corpus", str(text), "--out", str(tokens)]) == 0
    assert "char tokenizer" in capsys.readouterr().out
    assert main(["lm", "train", "--corpus", str(tokens), "--out", str(tmp_path / "a"), *TRAIN]) == 0
    assert main(["lm", "train", "--corpus", str(text), "--out", str(tmp_path / "b"), *TRAIN]) == 0
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in "ab")
    assert a["train_loss"] == b["train_loss"]  # the same ids, the same batches
    final = a["final_validation"]
    assert final["bits_per_byte"] == final["bits_per_char"]  # ASCII: one byte per character
    assert final["perplexity"] > 1 and a["metric"] == "bits_per_char"
    assert main(["lm", "export-checkpoint", "--run", str(tmp_path / "a"), "--to", str(tmp_path / "exp")]) == 0
    from astrosnn.lm import load_checkpoint

    assert load_checkpoint(tmp_path / "exp").step == 3


def test_bpe_folder_trains_and_generates(text, tmp_path, capsys):
    pytest.importorskip("tokenizers")
    tokens = tmp_path / "bpe"
    assert main(["lm", "prepare", "--corpus", str(text), "--tokenizer", "bpe", "--vocab-size", "300", "--out",
                 str(tokens), "--validation-fraction", "0.2"]) == 0  # fmt: skip
    run = tmp_path / "run"
    assert main(["lm", "train", "--corpus", str(tokens), "--out", str(run), *TRAIN]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metric"] == "bits_per_byte" and metrics["final_validation"]["bits_per_byte"] > 0
    config = json.loads((run / "config.json").read_text())
    assert config["level"] == "bpe" and config["tokenizer"]["file"] == "tokenizer.json"
    capsys.readouterr()
    assert main(["lm", "generate", "--checkpoint", str(run), "--prompt", "Speak,", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("Speak,")
    if importlib.util.find_spec("transformers") is not None:  # the hf extra: export ships the run's tokenizer
        greedy = ["--prompt", "Speak,", "--max-new-tokens", "8", "--top-k", "1"]
        assert main(["lm", "generate", "--checkpoint", str(run), *greedy]) == 0
        native = capsys.readouterr().out
        assert main(["lm", "export", "--checkpoint", str(run), "--hf", str(tmp_path / "hf")]) == 0
        capsys.readouterr()
        assert main(["lm", "generate", "--checkpoint", str(tmp_path / "hf"), *greedy]) == 0
        assert capsys.readouterr().out == native
    # the tokenizer is part of the checkpoint: a changed one is refused
    (run / "tokenizer.json").write_text((run / "tokenizer.json").read_text() + " ")
    assert main(["lm", "generate", "--checkpoint", str(run), "--prompt", "Speak"]) == 2
    _one_line_error(capsys, "tokenizer.json", "checksum")


def test_bad_input_is_one_line(text, tmp_path, capsys):
    assert main(["lm", "prepare", "--corpus", str(text), "--tokenizer", "wordpiece", "--out", str(tmp_path / "x")]) == 2
    _one_line_error(capsys, "unknown tokenizer 'wordpiece'")
    # a vocabulary too large for uint16 token files
    wide = tmp_path / "wide.txt"
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 70_000) if not 0xD800 <= c < 0xE000]
    wide.write_text("".join(chars) * 2, encoding="utf-8")
    assert main(["lm", "prepare", "--corpus", str(wide), "--dtype", "uint16", "--out", str(tmp_path / "w")]) == 2
    _one_line_error(capsys, "too large for uint16")
    # a token file that does not match its manifest
    tokens = tmp_path / "tok"
    assert main(["lm", "prepare", "--corpus", str(text), "--out", str(tokens)]) == 0
    data = np.fromfile(tokens / "train.bin", dtype="<u2")
    data[5] = (data[5] + 1) % 10
    data.tofile(tokens / "train.bin")
    capsys.readouterr()
    assert main(["lm", "train", "--corpus", str(tokens), "--out", str(tmp_path / "r"), *TRAIN]) == 2
    _one_line_error(capsys, "train.bin", "checksum mismatch")
    # cut short
    (tokens / "train.bin").write_bytes((tokens / "train.bin").read_bytes()[:-2])
    assert main(["lm", "train", "--corpus", str(tokens), "--out", str(tmp_path / "r"), *TRAIN]) == 2
    _one_line_error(capsys, "train.bin", "manifest.json")
