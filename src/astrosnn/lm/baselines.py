"""Baseline language models following the astrosnn LM protocol (:mod:`astrosnn.lm.base`): an LSTM and a
small causal Transformer. Their ``step`` is the base class's one-token forward. Feeding a sequence in pieces with the state carried gives the same
logits as one forward (the Transformer: exactly while the text fits its context window, and as a sliding
window of the last `context` tokens after that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.base import DEFAULT_SIZE, LanguageModelBase, check_dropout, check_positive

# ---------------------------------------------------------------------------------------------- LSTM


@dataclass
class LSTMConfig:
    vocab_size: int
    width: int = DEFAULT_SIZE.width
    layers: int = DEFAULT_SIZE.layers
    tie_embeddings: bool = False
    dropout: float = 0.0  # on the embedding, between LSTM layers and before the head (Zaremba et al.)

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "width", "layers")
        check_dropout(self.dropout)


class LSTMState(NamedTuple):
    h: torch.Tensor  # (layers, B, width)
    c: torch.Tensor  # (layers, B, width)


class LSTMLM(LanguageModelBase):
    """Embedding -> multi-layer LSTM -> linear head."""

    kind = "lstm"
    carries_state = True

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(config.width, config.width, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self._make_head(bias=True)

    def init_state(self, batch_size: int, device=None, dtype=None) -> LSTMState:
        device, dtype = self._device_dtype(device, dtype)
        shape = (self.config.layers, batch_size, self.config.width)
        zeros = torch.zeros(shape, device=device, dtype=dtype)
        return LSTMState(zeros, zeros.clone())

    def forward(self, ids: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        self.check_ids(ids)
        if state is None:
            state = self.init_state(ids.shape[0])
        out, (h, c) = self.lstm(self.drop(self.embed(ids)), (state.h, state.c))
        return self.head(self.drop(out)), LSTMState(h, c)


# --------------------------------------------------------------------------------------- Transformer


@dataclass
class TransformerConfig:
    vocab_size: int
    width: int = DEFAULT_SIZE.width
    layers: int = DEFAULT_SIZE.layers
    heads: int = DEFAULT_SIZE.heads
    context: int = 128  # maximum context = the training sequence length
    mlp_ratio: int = 4
    positions: str = "learned"  # "learned" | "sinusoidal"
    tie_embeddings: bool = False
    dropout: float = 0.0  # on the embedding and on each residual branch
    # the common option seq_len (the training sequence length) sets the context unless context is given
    option_aliases: ClassVar[dict[str, str]] = {"seq_len": "context"}

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "width", "layers", "heads", "context", "mlp_ratio")
        check_dropout(self.dropout)
        if self.width % self.heads:
            raise AstrosnnError(f"transformer width {self.width} is not divisible by heads {self.heads}")
        if self.positions not in ("learned", "sinusoidal"):
            raise AstrosnnError(f"unknown positions {self.positions!r} (choose learned or sinusoidal)")


class TransformerState(NamedTuple):
    """The last <= context ids, and the keys/values of each layer for them at positions 0..len-1."""

    ids: torch.Tensor  # (B, S)
    keys: tuple[torch.Tensor, ...]  # per layer (B, heads, S, head_dim)
    values: tuple[torch.Tensor, ...]


class _Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.heads = c.heads
        self.norm1 = nn.LayerNorm(c.width)
        self.qkv = nn.Linear(c.width, 3 * c.width)
        self.proj = nn.Linear(c.width, c.width)
        self.norm2 = nn.LayerNorm(c.width)
        self.mlp = nn.Sequential(
            nn.Linear(c.width, c.mlp_ratio * c.width), nn.GELU(), nn.Linear(c.mlp_ratio * c.width, c.width)
        )
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, past_k, past_v):
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        past = k.shape[2] - T
        if past == 0:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # query i (absolute position past+i) sees keys 0..past+i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.mlp(self.norm2(x))), k, v


class TransformerLM(LanguageModelBase):
    """Pre-norm causal Transformer with a KV cache; the context is limited to `config.context` tokens.

    Training does not carry state across batches (`carries_state = False`): every batch is one window
    starting at position 0, the usual setup. In generation, once the text outgrows the context, each new
    token is computed from the last `context` tokens (a sliding window, recomputed).
    """

    kind = "transformer"
    carries_state = False

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        c = config
        if c.positions == "learned":
            self.pos = nn.Embedding(c.context, c.width)
        else:
            self.register_buffer("sinusoid", _sinusoid(c.context, c.width), persistent=False)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.drop = nn.Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.width)
        self._make_head(bias=True)
        self.apply(_init_weights)

    def init_state(self, batch_size: int, device=None, dtype=None) -> TransformerState:
        device, dtype = self._device_dtype(device, dtype)
        hd = self.config.width // self.config.heads
        empty = torch.zeros(batch_size, self.config.heads, 0, hd, device=device, dtype=dtype)
        L = self.config.layers
        return TransformerState(
            torch.zeros(batch_size, 0, dtype=torch.long, device=device), (empty,) * L, (empty,) * L
        )

    def _positions(self, start: int, length: int) -> torch.Tensor:
        if self.config.positions == "learned":
            return self.pos.weight[start : start + length]
        return self.sinusoid[start : start + length]

    def _run(self, ids: torch.Tensor, state: TransformerState | None) -> tuple[torch.Tensor, TransformerState]:
        """Exact cached forward; requires past + new <= context."""
        past = 0 if state is None else state.ids.shape[1]
        x = self.drop(self.embed(ids) + self._positions(past, ids.shape[1]))
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            pk = None if state is None or past == 0 else state.keys[i]
            pv = None if state is None or past == 0 else state.values[i]
            x, k, v = block(x, pk, pv)
            keys.append(k)
            values.append(v)
        all_ids = ids if state is None or past == 0 else torch.cat([state.ids, ids], dim=1)
        return self.head(self.norm(x)), TransformerState(all_ids, tuple(keys), tuple(values))

    def forward(
        self, ids: torch.Tensor, state: TransformerState | None = None
    ) -> tuple[torch.Tensor, TransformerState]:
        self.check_ids(ids)
        ctx = self.config.context
        past = 0 if state is None else state.ids.shape[1]
        fit = max(0, min(ids.shape[1], ctx - past))
        pieces = []
        if fit:
            logits, state = self._run(ids[:, :fit], state)
            pieces.append(logits)
        for t in range(fit, ids.shape[1]):  # beyond the context: slide a window of the last ctx tokens
            history = ids[:, :0] if state is None else state.ids
            window = torch.cat([history, ids[:, t : t + 1]], dim=1)[:, -ctx:]
            logits, state = self._run(window, None)
            pieces.append(logits[:, -1:])
        if state is None:  # empty input
            state = self.init_state(ids.shape[0])
            return ids.new_zeros(ids.shape[0], 0, self.config.vocab_size, dtype=self.head.weight.dtype), state
        return torch.cat(pieces, dim=1), state


# -------------------------------------------------------------------------------------------- helpers


def _sinusoid(length: int, width: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
