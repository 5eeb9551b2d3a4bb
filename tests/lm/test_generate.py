"""Generation: carried state matches a full forward, seeds reproduce, bad prompts are named."""

from __future__ import annotations

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm import build_model, model_kinds
from astrosnn.lm.checkpoint import save_checkpoint
from astrosnn.lm.generation import (
    Vocabulary,
    generate,
    generate_from_checkpoint,
    sample_next,
    stream_ids,
)

MODEL_KINDS = model_kinds()

VOCAB = Vocabulary(tuple(" abcdefghij."), "char")


def tiny(kind: str):
    torch.manual_seed(0)
    return build_model(kind, len(VOCAB.tokens), width=16, layers=2, heads=2, seq_len=64).eval()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_generation_logits_equal_a_full_forward(kind, monkeypatch):
    model = tiny(kind).double()
    prompt = VOCAB.encode("abc def")
    seen = []
    original = sample_next

    def spy(logits, temperature, top_k, generator):
        seen.append(logits.clone())
        return original(logits, temperature, top_k, generator)

    monkeypatch.setattr("astrosnn.lm.generation.sample_next", spy)
    new = list(stream_ids(model, prompt, max_new_tokens=12, temperature=1.0, seed=5))
    full, _ = model(torch.tensor([prompt + new]))
    expected = full[0, len(prompt) - 1 : -1]
    torch.testing.assert_close(torch.cat(seen).double(), expected.float().double(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["astrosnn", "lstm"])
def test_generation_is_reproducible_by_seed(kind):
    model = tiny(kind)
    a = generate(model, VOCAB, "abc", max_new_tokens=40, temperature=1.5, seed=1)
    b = generate(model, VOCAB, "abc", max_new_tokens=40, temperature=1.5, seed=1)
    c = generate(model, VOCAB, "abc", max_new_tokens=40, temperature=1.5, seed=2)
    assert a == b and a != c
    assert len(a) == 40 and set(a) <= set(VOCAB.tokens)


def test_greedy_and_top_k_one_agree():
    model = tiny("lstm")
    greedy = generate(model, VOCAB, "a", max_new_tokens=20, temperature=0)
    top1 = generate(model, VOCAB, "a", max_new_tokens=20, temperature=1.0, top_k=1, seed=9)
    assert greedy == top1


def test_top_k_restricts_sampling():
    logits = torch.tensor([[5.0, 4.0, -1.0, -2.0]])
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, 10.0, 2, g)) for _ in range(200)}
    assert draws == {0, 1}


def test_bad_prompts_are_named():
    model = tiny("lstm")
    with pytest.raises(AstrosnnError, match=r"2 character\(s\) not in the model's vocabulary: 'X', 'Z'"):
        generate(model, VOCAB, "aXbZ")
    with pytest.raises(AstrosnnError, match="empty"):
        generate(model, VOCAB, "")
    with pytest.raises(AstrosnnError, match="temperature"):
        generate(model, VOCAB, "a", temperature=-1)
    with pytest.raises(AstrosnnError, match="top_k"):
        generate(model, VOCAB, "a", top_k=0)


def test_word_level_vocabulary():
    vocab = Vocabulary(("<eos>", "the", "cat", "sat"), "word")
    assert vocab.encode("the cat  sat") == [1, 2, 3]
    assert vocab.piece(2) == " cat"
    with pytest.raises(AstrosnnError, match=r"word\(s\).*'dog'"):
        vocab.encode("the dog")


def test_generate_from_checkpoint(tmp_path):
    model = tiny("astrosnn")
    save_checkpoint(tmp_path, model, vocab=VOCAB.tokens, level="char")
    text = generate_from_checkpoint(tmp_path, "ab", max_new_tokens=15, seed=3)
    assert text == generate(model, VOCAB, "ab", max_new_tokens=15, seed=3)
