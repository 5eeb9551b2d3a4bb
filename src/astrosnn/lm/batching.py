"""Contiguous token streams for truncated backpropagation through time.

The token sequence is cut into `batch_size` equal streams laid side by side (row b holds tokens
b*L .. (b+1)*L - 1). Batch i holds columns i*seq_len .. (i+1)*seq_len - 1 of every stream, so batch i+1
continues exactly where batch i stopped in every row: a recurrent state carried from one batch to the
next is the state of the same text.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from astrosnn.errors import AstrosnnError


class StreamBatcher:
    """`batch(i) -> (inputs, targets)`, both LongTensor (batch_size, <= seq_len); targets are inputs shifted by one."""

    def __init__(self, ids: np.ndarray | torch.Tensor, batch_size: int, seq_len: int, drop_last: bool = True):
        if batch_size < 1 or seq_len < 1:
            raise AstrosnnError(f"batch size and sequence length must be >= 1, got {batch_size} and {seq_len}")
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)
        stream_len = len(ids) // batch_size
        if stream_len < 2 or (drop_last and stream_len - 1 < seq_len):
            raise AstrosnnError(
                f"{len(ids)} tokens are too few for {batch_size} streams of sequence length {seq_len}"
                f" (need at least {batch_size * (seq_len + 1)})"
            )
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.drop_last = drop_last
        self.streams = ids[: batch_size * stream_len].view(batch_size, stream_len)
        usable = stream_len - 1  # the last token of a stream is only a target
        self.num_batches = usable // seq_len if drop_last else -(-usable // seq_len)

    def __len__(self) -> int:
        return self.num_batches

    @property
    def tokens_per_pass(self) -> int:
        """Number of predicted tokens in one pass over all batches."""
        usable = self.streams.shape[1] - 1
        per_stream = self.num_batches * self.seq_len if self.drop_last else usable
        return self.batch_size * per_stream

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} out of range 0..{self.num_batches - 1}")
        start = index * self.seq_len
        stop = min(start + self.seq_len, self.streams.shape[1] - 1)
        return self.streams[:, start:stop], self.streams[:, start + 1 : stop + 1]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(self.num_batches):
            yield self.batch(i)
