"""Fixtures of the Hugging Face tests: tiny native checkpoints (random weights, every kind) and their exports.

Everything is local: the hub and datasets are offline.
"""

from __future__ import annotations

import os
import string

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

VOCAB = tuple("\n" + string.printable[:95])  # newline, digits, letters, punctuation, space
SMALL = {"width": 16, "layers": 2, "heads": 2}
KINDS = ("astrosnn", "lif-snn", "lstm", "transformer")


def make_checkpoint(directory, kind: str = "astrosnn", seed: int = 0, **options):
    """A native checkpoint folder holding a random `kind` model over VOCAB (char level)."""
    import torch

    from astrosnn.lm import build_model, save_checkpoint

    torch.manual_seed(seed)
    extra = {"zero_init_out": False} if kind in ("astrosnn", "lif-snn") else {}  # untrained blocks still act
    model = build_model(kind, len(VOCAB), **{**SMALL, **extra, **options})
    save_checkpoint(directory, model, vocab=VOCAB, level="char", step=3)
    return directory


@pytest.fixture(scope="session")
def make_ckpt():
    """make_checkpoint(directory, kind="astrosnn", seed=0, **options)."""
    return make_checkpoint


@pytest.fixture(scope="session")
def vocab():
    return VOCAB


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """kind -> (native checkpoint folder, exported HF folder)."""
    from astrosnn.hf import export_checkpoint

    root = tmp_path_factory.mktemp("hf")
    folders = {}
    for kind in KINDS:
        native = make_checkpoint(root / f"native-{kind}", kind)
        folders[kind] = (native, export_checkpoint(native, root / f"hf-{kind}"))
    return folders


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
