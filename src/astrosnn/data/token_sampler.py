"""Contiguous TBPTT batches read from a token file (np.memmap) slice by slice, never the whole corpus;
and bits per byte, the tokenizer-independent measure of a language model's loss.

`TokenStream` cuts the tokens the way `astrosnn.lm.batching.StreamBatcher` does for an in-memory array:
`batch_size` equal stripes side by side (row b holds tokens b*L .. (b+1)*L - 1, L = len // batch_size);
batch i holds columns i*seq_len .. (i+1)*seq_len - 1 of every stripe, so batch i+1 continues where batch i
stopped and a recurrent state can be carried. For the same array both give the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from astrosnn.errors import AstrosnnError

if TYPE_CHECKING:  # torch is imported when batches are made: preparing token files does not need it
    import torch


class TokenStream:
    """`batch(i) -> (inputs, targets)`, int64 tensors (rows, <= seq_len); targets are inputs shifted by one.

    `batch_size` is the global batch. With `world_size` > 1, rank r gets stripes r, r + world_size, ... of
    it (batch_size / world_size rows, in that order); the ranks' rows together are the global batch.
    `offset` drops that many leading tokens first (a different cut of the same corpus, e.g. per epoch)."""

    def __init__(
        self,
        data,
        batch_size: int,
        seq_len: int,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        offset: int = 0,
    ):
        if batch_size < 1 or seq_len < 1:
            raise AstrosnnError(f"batch size and sequence length must be >= 1, got {batch_size} and {seq_len}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise AstrosnnError(f"rank must lie in 0..world_size-1, got rank {rank} of world size {world_size}")
        if batch_size % world_size:
            raise AstrosnnError(
                f"batch size {batch_size} does not divide into {world_size} equal parts (one per rank)"
            )
        if type(data).__module__.startswith("torch"):
            data = data.detach().cpu().numpy()
        if getattr(data, "ndim", 1) != 1:
            raise AstrosnnError(f"token data must be one-dimensional, got shape {tuple(data.shape)}")
        if not 0 <= offset < len(data):
            raise AstrosnnError(f"offset {offset} lies outside the {len(data)} tokens")
        n = len(data) - offset
        stream_len = n // batch_size
        if stream_len < 2 or (drop_last and stream_len - 1 < seq_len):
            raise AstrosnnError(
                f"{n} tokens are too few for {batch_size} streams of sequence length {seq_len}"
                f" (need at least {batch_size * (seq_len + 1)})"
            )
        self.data = data
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.stream_len = stream_len
        usable = stream_len - 1  # the last token of a stripe is only a target
        self.num_batches = usable // seq_len if drop_last else -(-usable // seq_len)
        #: first token of each of this rank's stripes, in the data's coordinates
        self.offsets = offset + stream_len * np.arange(rank, batch_size, world_size, dtype=np.int64)

    def __len__(self) -> int:
        return self.num_batches

    @property
    def rows(self) -> int:
        return len(self.offsets)

    @property
    def tokens_per_pass(self) -> int:
        """Number of tokens this rank predicts in one pass over all batches."""
        per_stream = self.num_batches * self.seq_len if self.drop_last else self.stream_len - 1
        return self.rows * per_stream

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} out of range 0..{self.num_batches - 1}")
        start = index * self.seq_len
        stop = min(start + self.seq_len, self.stream_len - 1)
        block = np.empty((self.rows, stop - start + 1), dtype=np.int64)
        for r, o in enumerate(self.offsets.tolist()):  # one contiguous read per stripe
            block[r] = self.data[o + start : o + stop + 1]
        t = torch.from_numpy(block)
        return t[:, :-1], t[:, 1:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches start, start + 1, ... (resume a pass part way)."""
        for i in range(start, self.num_batches):
            yield self.batch(i)


def bits_per_byte(mean_nll: float, bytes_per_token: float) -> float:
    """Bits per byte of text from a mean loss in nats per token: (total nats / ln 2) / total bytes
    = mean_nll / ln 2 / bytes_per_token. Comparable across tokenizers (perplexity is not)."""
    if not bytes_per_token > 0:
        raise AstrosnnError(f"bytes per token must be > 0, got {bytes_per_token}")
    return float(mean_nll) / math.log(2) / float(bytes_per_token)


def bits_per_byte_total(total_nll: float, total_bytes: int) -> float:
    """Bits per byte from summed nats and the exact bytes of the predicted tokens
    (e.g. TokenCorpus.byte_lengths()[targets].sum())."""
    if not total_bytes > 0:
        raise AstrosnnError(f"total bytes must be > 0, got {total_bytes}")
    return float(total_nll) / math.log(2) / float(total_bytes)


def perplexity(mean_nll: float) -> float:
    """exp(mean nats per token); inf instead of an overflow."""
    try:
        return math.exp(float(mean_nll))
    except OverflowError:
        return math.inf
