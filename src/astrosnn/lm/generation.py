"""Text generation: feed the prompt once, then sample one token at a time carrying the model state.

For recurrent models (AstroSNN, LIF-SNN, LSTM) each new token costs one step whatever the context length.
AstroSNN and LIF-SNN decode through the fused single-token step (:mod:`astrosnn.lm.decode`: the whole model in
one numba call per token); other models, and ``fused=False``, use the reference ``model.step``.
The sampling options and their defaults live in :class:`Sampling`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.checkpoint import load_checkpoint
from astrosnn.lm.decode import make_decoder


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


@dataclass(frozen=True)
class Sampling:
    """How to sample: the options of :func:`generate`, :func:`stream_text` and :func:`stream_ids` (checked here)."""

    max_new_tokens: int = 300
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = None  # sample among the k most likely tokens
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise AstrosnnError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not self.temperature >= 0:  # also rejects NaN
            raise AstrosnnError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise AstrosnnError(f"top_k must be >= 1, got {self.top_k}")


@torch.no_grad()
def stream_ids(
    model: nn.Module, prompt_ids: Sequence[int], fused: bool = True, **sampling: Any
) -> Iterator[int]:
    """Yield new token ids one by one: the prompt goes through the model once, then one step per token.

    `sampling`: the fields of :class:`Sampling`. `fused`: decode with the fused step where it covers the model
    (:func:`astrosnn.lm.decode.make_decoder`); False = ``model.step`` (the reference).
    """
    options = Sampling(**sampling)
    if len(prompt_ids) == 0:
        raise AstrosnnError("the prompt is empty: give at least one token")
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(options.seed)
        ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
        logits, state = model(ids, None)
        last = logits[:, -1]
        decoder = make_decoder(model, fused=fused) if options.max_new_tokens else None
        if decoder is not None:
            decoder.load_state(state)
        for _ in range(options.max_new_tokens):
            if not bool(torch.isfinite(last).all()):
                raise AstrosnnError("the model produced NaN or infinite logits: the checkpoint is damaged or "
                                    "training diverged")  # fmt: skip
            nxt = sample_next(last.float(), options.temperature, options.top_k, generator)
            yield int(nxt)
            last = decoder.step(nxt)
    finally:
        model.train(was_training)


def stream_text(model: nn.Module, vocab: Vocabulary, prompt: str, **sampling: Any) -> Iterator[str]:
    """Yield the generated text piece by piece (a character, or a space and a word); `sampling` as above."""
    if not prompt:
        raise AstrosnnError("the prompt is empty: give at least one character")
    head = getattr(getattr(model, "config", None), "vocab_size", None)
    if head is not None and head != len(vocab.tokens):
        raise AstrosnnError(f"the vocabulary has {len(vocab.tokens)} tokens but the model's head has {head}: "
                            "they do not belong together")  # fmt: skip
    ids = vocab.encode(prompt)
    for token in stream_ids(model, ids, **sampling):
        yield vocab.piece(token)


def generate(model: nn.Module, vocab: Vocabulary, prompt: str, **sampling: Any) -> str:
    """The generated continuation of `prompt` (without the prompt): :func:`stream_text` joined."""
    return "".join(stream_text(model, vocab, prompt, **sampling))


def generate_from_checkpoint(directory: str | Path, prompt: str, **sampling: Any) -> str:
    """Load a checkpoint folder and generate; `sampling` as for `generate`."""
    ckpt = load_checkpoint(directory)
    return generate(ckpt.model, Vocabulary(ckpt.vocab, ckpt.level), prompt, **sampling)
