"""Memory-retention tasks for sequence models: delayed recall, MQAR (Zoology's and a compact one), selective copying.

Each generator returns a `TaskBatch` of `inputs` (B, T) and `targets` (B, T) token ids, a boolean `mask`
(B, T) marking the positions that are scored, the vocabulary size and the task's chance accuracy (a uniform
guess among the tokens that can be an answer); the model is trained with a cross-entropy on the masked
positions only (`masked_loss`) and measured by `masked_accuracy`. All randomness comes from the given
`torch.Generator`, so a seeded generator gives the same batch on every machine and run.

- :func:`zoology_mqar`: multi-query associative recall exactly as Zoology's ``multiquery_ar`` (Arora et al.
  2023), the benchmark's MQAR.
- :func:`mqar`: a compact MQAR (queries right after the context, separate key and value ranges); kept for the
  older tests and probes.
- :func:`delayed_recall`: copy a few symbols back after a long blank delay.
- :func:`selective_copying`: Mamba's selective copying (Gu & Dao 2023; the ``variable=True`` copying data of
  the state-spaces repositories): content tokens at random positions among noise, then markers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from astrosnn.errors import AstrosnnError


class TaskBatch(NamedTuple):
    inputs: torch.Tensor  # long (B, T)
    targets: torch.Tensor  # long (B, T); 0 where not scored
    mask: torch.Tensor  # bool (B, T)
    vocab_size: int
    chance: float = 0.0  # accuracy of a uniform guess among the possible answers (0: not stated)


def delayed_recall(
    batch_size: int,
    delay: int,
    length: int = 8,
    symbols: int = 16,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Copy `length` random symbols after `delay` blank tokens and a go marker.

    Tokens: symbols 0..symbols-1, blank = symbols, go = symbols + 1 (vocab_size = symbols + 2).
    Input:  s_1 .. s_L, blank x delay, go, blank x (L - 1)   (T = 2L + delay)
    Target: at the go marker and the L - 1 positions after it, s_1 .. s_L. Chance accuracy is 1/symbols.
    """
    for name, value in (("batch_size", batch_size), ("length", length), ("symbols", symbols)):
        if value < 1:
            raise AstrosnnError(f"{name} must be >= 1, got {value}")
    if delay < 0:
        raise AstrosnnError(f"delay must be >= 0, got {delay}")
    blank, go = symbols, symbols + 1
    T = 2 * length + delay
    seq = torch.randint(0, symbols, (batch_size, length), generator=generator)
    inputs = torch.full((batch_size, T), blank, dtype=torch.long)
    inputs[:, :length] = seq
    start = length + delay
    inputs[:, start] = go
    targets = torch.zeros(batch_size, T, dtype=torch.long)
    targets[:, start:] = seq
    mask = torch.zeros(batch_size, T, dtype=torch.bool)
    mask[:, start:] = True
    return TaskBatch(inputs, targets, mask, symbols + 2, 1.0 / symbols)


def mqar(
    batch_size: int,
    pairs: int = 24,
    queries: int | None = None,
    keys: int = 32,
    values: int = 32,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Compact multi-query associative recall (not Zoology's layout; the benchmark uses :func:`zoology_mqar`):
    `pairs` key-value pairs, then `queries` of the keys again, contiguously.

    Tokens: keys 0..keys-1, values keys..keys+values-1 (vocab_size = keys + values). Keys within a
    sequence are distinct. Input: k_1 v_1 .. k_P v_P q_1 .. q_Q (T = 2P + Q); the target at each query
    is the value paired with that key. Chance accuracy is 1/values.
    """
    queries = pairs if queries is None else queries
    if pairs < 1 or queries < 1 or batch_size < 1:
        raise AstrosnnError(f"batch_size, pairs and queries must be >= 1, got {batch_size}, {pairs}, {queries}")
    if pairs > keys:
        raise AstrosnnError(f"{pairs} pairs need at least as many distinct keys, got keys={keys}")
    k = torch.stack([torch.randperm(keys, generator=generator)[:pairs] for _ in range(batch_size)])
    v = torch.randint(0, values, (batch_size, pairs), generator=generator) + keys
    which = torch.randint(0, pairs, (batch_size, queries), generator=generator)
    q = torch.gather(k, 1, which)
    answers = torch.gather(v, 1, which)
    context = torch.stack([k, v], dim=2).reshape(batch_size, 2 * pairs)
    inputs = torch.cat([context, q], dim=1)
    targets = torch.zeros_like(inputs)
    targets[:, 2 * pairs :] = answers
    mask = torch.zeros_like(inputs, dtype=torch.bool)
    mask[:, 2 * pairs :] = True
    return TaskBatch(inputs, targets, mask, keys + values, 1.0 / values)


def mqar_power_law(space: int, power_a: float = 0.01) -> torch.Tensor:
    """Zoology's gap distribution: p(gap = g) proportional to a * (g + 1) ** (a - 1), g = 0 .. space - 1."""
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    return p / p.sum()


def zoology_mqar(
    batch_size: int,
    seq_len: int = 64,
    pairs: int = 4,
    vocab_size: int = 256,
    power_a: float = 0.01,
    random_non_queries: bool = True,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Multi-query associative recall as Zoology's ``multiquery_ar`` (Arora et al. 2023, zoology/data).

    Layout (T = `seq_len`, P = `pairs`, V = `vocab_size`, C = 2P):

    - keys are drawn without replacement from ``1 .. V//2 - 1`` (0 is Zoology's placeholder), values without
      replacement from ``V//2 .. V-1``; each key appears once in the context;
    - positions ``0 .. C-1`` hold the pairs as consecutive tokens ``k_1 v_1 k_2 v_2 ...``;
    - every key is queried exactly once after the context: query i sits at position ``C + 2 * gap_i``, the
      gaps drawn without replacement from ``0 .. (T - C)//2 - 1`` with p(gap) ~ ``a * (gap + 1) ** (a - 1)``
      (``power_a`` a = 0.01: short gaps are likelier, long ones still occur);
    - every other position after the context is a uniformly random token of the whole vocabulary
      (``random_non_queries``; Zoology's default; False leaves Zoology's placeholder 0 there);
    - the target at a query position is the value paired with the queried key (Zoology's label, shifted by
      one: the next token), scored there only (``mask``).

    Zoology requires ``T % 2 == 0``, ``4P <= T`` and ``V > T``; the last is not needed by the layout and is
    not enforced (V >= 2P + 2 is), so a CPU-sized vocabulary (256) serves every grid cell. Chance: one
    over the V - V//2 possible values; a model that only learns to repeat some value seen in the context
    would score about 1/P.
    """
    for name, value in (("batch_size", batch_size), ("pairs", pairs), ("seq_len", seq_len)):
        if value < 1:
            raise AstrosnnError(f"{name} must be >= 1, got {value}")
    if seq_len % 2:
        raise AstrosnnError(f"seq_len must be even (Zoology's MQAR), got {seq_len}")
    if 4 * pairs > seq_len:
        raise AstrosnnError(f"{pairs} pairs need seq_len >= {4 * pairs} (4 tokens a pair), got {seq_len}")
    half = vocab_size // 2
    if half - 1 < pairs or vocab_size - half < pairs:
        raise AstrosnnError(f"vocab_size {vocab_size} is too small for {pairs} distinct keys and values")
    if not power_a > 0:
        raise AstrosnnError(f"power_a must be > 0, got {power_a}")
    B, C = batch_size, 2 * pairs
    g = generator
    keys = torch.rand(B, half - 1, generator=g).argsort(dim=1)[:, :pairs] + 1
    values = torch.rand(B, vocab_size - half, generator=g).argsort(dim=1)[:, :pairs] + half
    space = (seq_len - C) // 2
    p = mqar_power_law(space, power_a).expand(B, space)
    gaps = torch.multinomial(p, pairs, replacement=False, generator=g)  # (B, P), distinct per row
    inputs = torch.zeros(B, seq_len, dtype=torch.long)
    inputs[:, 0:C:2] = keys
    inputs[:, 1:C:2] = values
    where = C + 2 * gaps
    inputs.scatter_(1, where, keys)
    targets = torch.zeros(B, seq_len, dtype=torch.long)
    targets.scatter_(1, where, values)
    mask = torch.zeros(B, seq_len, dtype=torch.bool)
    mask.scatter_(1, where, True)
    if random_non_queries:
        noise = torch.randint(0, vocab_size, (B, seq_len), generator=g)
        fill = inputs == 0
        inputs[fill] = noise[fill]
    return TaskBatch(inputs, targets, mask, vocab_size, 1.0 / (vocab_size - half))


def selective_copying(
    batch_size: int,
    length: int = 256,
    tokens: int = 16,
    vocab_size: int = 16,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Mamba's selective copying (Gu & Dao 2023, section 4.1.1 / appendix E.1).

    As the ``variable=True`` copying data of the state-spaces repositories (``torch_copying_data(L, M, A)``):
    `tokens` (M) content tokens drawn uniformly from ``1 .. A-2`` (A = `vocab_size`) are placed, in order, at
    M random distinct positions of a region of L + M positions (L = `length`) otherwise filled with the noise
    token 0; then M marker tokens A-1 follow. The model must output the content tokens in order, one at each
    marker position (T = L + 2M; scored at the last M positions). Mamba uses L = 4096, M = 16, A = 16; chance
    is 1 / (A - 2).
    """
    for name, value in (("batch_size", batch_size), ("length", length), ("tokens", tokens)):
        if value < 1:
            raise AstrosnnError(f"{name} must be >= 1, got {value}")
    if vocab_size < 3:
        raise AstrosnnError(f"vocab_size must be >= 3 (noise, marker and a content token), got {vocab_size}")
    B, M, L = batch_size, tokens, length
    content = torch.randint(1, vocab_size - 1, (B, M), generator=generator)
    where = torch.rand(B, L + M, generator=generator).argsort(dim=1)[:, :M].sort(dim=1).values
    inputs = torch.zeros(B, L + 2 * M, dtype=torch.long)
    inputs[:, : L + M].scatter_(1, where, content)
    inputs[:, L + M :] = vocab_size - 1
    targets = torch.zeros_like(inputs)
    targets[:, L + M :] = content
    mask = torch.zeros_like(inputs, dtype=torch.bool)
    mask[:, L + M :] = True
    return TaskBatch(inputs, targets, mask, vocab_size, 1.0 / (vocab_size - 2))


def masked_loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean cross-entropy over the scored positions."""
    return F.cross_entropy(logits[batch.mask], batch.targets[batch.mask])


@torch.no_grad()
def masked_accuracy(logits: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of scored positions where the most likely token is the target."""
    return float((logits[batch.mask].argmax(-1) == batch.targets[batch.mask]).float().mean())
