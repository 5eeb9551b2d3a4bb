"""Memory-retention tasks for sequence models: delayed recall (copy after a delay) and MQAR.

Each generator returns a `TaskBatch` of `inputs` (B, T) and `targets` (B, T) token ids and a boolean
`mask` (B, T) marking the positions that are scored; the model is trained with a cross-entropy on the
masked positions only (`masked_loss`) and measured by `masked_accuracy`.
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
    return TaskBatch(inputs, targets, mask, symbols + 2)


def mqar(
    batch_size: int,
    pairs: int = 24,
    queries: int | None = None,
    keys: int = 32,
    values: int = 32,
    generator: torch.Generator | None = None,
) -> TaskBatch:
    """Multi-query associative recall: `pairs` key-value pairs, then `queries` of the keys again.

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
    return TaskBatch(inputs, targets, mask, keys + values)


def masked_loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean cross-entropy over the scored positions."""
    return F.cross_entropy(logits[batch.mask], batch.targets[batch.mask])


@torch.no_grad()
def masked_accuracy(logits: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of scored positions where the most likely token is the target."""
    return float((logits[batch.mask].argmax(-1) == batch.targets[batch.mask]).float().mean())
