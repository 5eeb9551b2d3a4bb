"""Shared fixtures of the CLI tests: a tiny trained LM run and the one-line-error check."""

from __future__ import annotations

import pytest

from astrosnn.cli import main

LM_TEXT = "to be or not to be, that is the question. whether tis nobler in the mind to suffer. " * 20
TINY_LM = ["--model", "lstm", "--width", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """``(root, text file, run folder)`` of a 6-step tiny LSTM run on a local text file, one per test module."""
    root = tmp_path_factory.mktemp("lmrun")
    text = root / "play.txt"
    text.write_text(LM_TEXT)
    out = root / "run"
    assert main(["lm", "train", "--corpus", str(text), *TINY_LM, "--steps", "6", "--eval-every", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    return root, text, out


@pytest.fixture
def tiny_lm_options():
    """The options of `lm_run`'s model, for further `lm train` calls."""
    return list(TINY_LM)


@pytest.fixture
def one_line_error(capsys):
    """``check(argv, *needles)``: `astrosnn argv` exits 2 with one ``astrosnn: error:`` line holding every needle."""

    def check(argv, *needles):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("astrosnn: error: ") and "\n" not in err, err
        for needle in needles:
            assert needle in err, err
        return err

    return check
