"""What every astrosnn language model shares: the model-size defaults, the LM protocol, a small base class
and the configs' checks.

The protocol (:class:`LanguageModel`), used by training, evaluation, generation and checkpoints:

- ``forward(ids (B, T), state=None) -> (logits (B, T, V), state)``; ``state=None`` starts fresh, and feeding a
  sequence in pieces with the state carried gives the logits of one forward;
- ``step(ids_t (B,), state=None) -> (logits (B, V), state)``: one token (generation);
- ``init_state(batch_size, device=None, dtype=None)``: a fresh state (any nesting of tuples of tensors);
- ``carries_state``: whether training carries the state from batch to batch (truncated BPTT);
- ``config``: a JSON-friendly dataclass (``asdict`` round-trips), ``kind``: the registry name.

:class:`LanguageModelBase` gives the token embedding, the (optionally tied) head, the ids check and ``step``
as a one-token ``forward``; a model with a cheaper recurrent form overrides ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from astrosnn.errors import AstrosnnError

__all__ = ["DEFAULT_SIZE", "LanguageModel", "LanguageModelBase", "ModelSize", "check_dropout", "check_positive"]


@dataclass(frozen=True)
class ModelSize:
    """Model-size defaults; every config and entry point (library, CLI, training, benchmarks) reads them here.

    A small model that visibly learns in a one-minute run on a laptop CPU.
    """

    width: int = 96
    layers: int = 2
    heads: int = 4  # astrocyte heads (AM-SU) or attention heads (Transformer); the LSTM has none


DEFAULT_SIZE = ModelSize()


@runtime_checkable
class LanguageModel(Protocol):
    """The LM protocol (see the module docstring)."""

    config: Any
    carries_state: bool

    @property
    def kind(self) -> str: ...

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def init_state(self, batch_size: int, device: Any = None, dtype: Any = None) -> Any: ...


class LanguageModelBase(nn.Module):
    """Token embedding ``self.embed`` (created first) and head ``self.head`` (``_make_head``, created last).

    Subclasses set ``kind`` (or override the property), build their layers between the two, and implement
    ``forward`` and ``init_state``. ``config`` must have ``vocab_size``, ``width`` and ``tie_embeddings``.
    """

    kind: str = ""
    carries_state: bool = True
    id_dtypes: tuple[torch.dtype, ...] = (torch.int64,)  # accepted dtypes of token ids

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)

    def _make_head(self, bias: bool) -> None:
        self.head = nn.Linear(self.config.width, self.config.vocab_size, bias=bias)
        if self.config.tie_embeddings:
            self.head.weight = self.embed.weight

    def _device_dtype(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        """The state's device and dtype: as given, else the parameters'."""
        ref = self.embed.weight
        return device or ref.device, dtype or ref.dtype

    def check_ids(self, ids: Tensor, ndim: int = 2) -> None:
        """An integer tensor of shape ``(B, T)`` (``ndim`` 2) or ``(B,)`` (1) with ids in ``[0, vocab_size)``."""
        shape = "(B, T)" if ndim == 2 else "(B,)"
        if not isinstance(ids, Tensor) or ids.dtype not in self.id_dtypes:
            got = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
            raise AstrosnnError(f"token ids must be an integer tensor {shape}, got {got}")
        if ids.ndim != ndim:
            raise AstrosnnError(f"token ids must have shape {shape}, got {tuple(ids.shape)}")
        vocab = self.config.vocab_size
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise AstrosnnError(
                f"token ids must lie in [0, {vocab}), i.e. 0..{vocab - 1}, got {int(ids.min())}..{int(ids.max())}"
            )

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One token ``ids (B,)`` -> ``(logits (B, V), state)``: a forward over a sequence of length one."""
        self.check_ids(ids, 1)
        logits, state = self(ids.view(-1, 1), state)
        return logits[:, -1], state


def check_dropout(rate: float) -> None:
    """A dropout rate must be a number in [0, 1)."""
    ok = isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate) and 0 <= rate < 1
    if not ok:
        raise AstrosnnError(f"dropout must be a number in [0, 1), got {rate!r}")


def check_positive(config: Any, *names: str) -> None:
    """Each named field of `config` must be a positive integer."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise AstrosnnError(f"{name} must be a positive integer, got {value!r}")
