"""Text generation: feed the prompt once, then sample one token at a time carrying the model state.

For recurrent models (AstroSNN, LIF-SNN, LSTM) each new token costs one step whatever the context length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from astrosnn.errors import AstrosnnError


@dataclass(frozen=True)
class Vocabulary:
    tokens: tuple[str, ...]
    level: str  # "char" | "word"

    def split(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else text.split()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; an error lists every token outside the vocabulary."""
        index = {t: i for i, t in enumerate(self.tokens)}
        pieces = self.split(text)
        unknown = sorted({p for p in pieces if p not in index})
        if unknown:
            what = "character" if self.level == "char" else "word"
            shown = ", ".join(repr(u) for u in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise AstrosnnError(f"prompt has {len(unknown)} {what}(s) not in the model's vocabulary: {shown}")
        return [index[p] for p in pieces]

    def piece(self, token_id: int, first: bool = False) -> str:
        text = self.tokens[token_id]
        return text if self.level == "char" or first else " " + text


def sample_next(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Sample ids (B,) from logits (B, V); temperature 0 means greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check(prompt_ids: Sequence[int], max_new_tokens: int, temperature: float, top_k: int | None) -> None:
    if len(prompt_ids) == 0:
        raise AstrosnnError("the prompt is empty: give at least one token")
    if max_new_tokens < 0:
        raise AstrosnnError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature >= 0:  # also rejects NaN
        raise AstrosnnError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise AstrosnnError(f"top_k must be >= 1, got {top_k}")


@torch.no_grad()
def stream_ids(
    model: nn.Module,
    prompt_ids: Sequence[int],
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> Iterator[int]:
    """Yield new token ids one by one: the prompt goes through the model once, then one token per step."""
    _check(prompt_ids, max_new_tokens, temperature, top_k)
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
        logits, state = model(ids, None)
        last = logits[:, -1]
        step = getattr(model, "step", None)  # the recurrent form, when the model has one
        for _ in range(max_new_tokens):
            nxt = sample_next(last.float(), temperature, top_k, generator)
            yield int(nxt)
            if step is not None:
                last, state = step(nxt, state)
            else:
                logits, state = model(nxt.view(1, 1), state)
                last = logits[:, -1]
    finally:
        model.train(was_training)


def stream_text(
    model: nn.Module,
    vocab: Vocabulary,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> Iterator[str]:
    """Yield the generated text piece by piece (a character, or a space and a word)."""
    if not prompt:
        raise AstrosnnError("the prompt is empty: give at least one character")
    ids = vocab.encode(prompt)
    for token in stream_ids(model, ids, max_new_tokens, temperature, top_k, seed):
        yield vocab.piece(token)


def generate(
    model: nn.Module,
    vocab: Vocabulary,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
) -> str:
    """The generated continuation of `prompt` (without the prompt)."""
    return "".join(stream_text(model, vocab, prompt, max_new_tokens, temperature, top_k, seed))


def generate_from_checkpoint(directory, prompt: str, **options) -> str:
    """Load a checkpoint folder and generate; options as for `generate`."""
    from astrosnn.lm.checkpoint import load_checkpoint

    ckpt = load_checkpoint(directory)
    return generate(ckpt.model, Vocabulary(ckpt.vocab, ckpt.level), prompt, **options)
