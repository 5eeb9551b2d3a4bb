"""TokenStream reads the batches of astrosnn.lm.batching.StreamBatcher from a memmap, per rank too."""

import math

import numpy as np
import pytest
import torch

from astrosnn.data.token_sampler import TokenStream, bits_per_byte, bits_per_byte_total, perplexity
from astrosnn.errors import AstrosnnError

# astrosnn.lm in the test only: the library side (astrosnn.data) must not import it
from astrosnn.lm.batching import StreamBatcher


@pytest.mark.parametrize("n, batch, seq, drop_last", [(1000, 4, 7, True), (1000, 4, 7, False), (257, 3, 16, True), (50, 5, 9, True), (50, 5, 9, False)])
def test_same_batches_as_stream_batcher(n, batch, seq, drop_last, tmp_path):
    ids = np.random.default_rng(n).integers(0, 60_000, n).astype("<u2")
    ids.tofile(tmp_path / "t.bin")
    mm = np.memmap(tmp_path / "t.bin", dtype="<u2", mode="r")
    ref = StreamBatcher(ids.astype(np.int64), batch, seq, drop_last=drop_last)
    ts = TokenStream(mm, batch, seq, drop_last=drop_last)
    assert len(ts) == len(ref) and ts.tokens_per_pass == ref.tokens_per_pass
    for (x, y), (rx, ry) in zip(ts, ref, strict=True):
        assert x.dtype == torch.int64 and torch.equal(x, rx) and torch.equal(y, ry)
    assert [b[0].shape for b in ts.batches(start=len(ts) - 1)] == [ref.batch(len(ref) - 1)[0].shape]


def test_ranks_partition_the_global_batch():
    ids = np.arange(10_000, dtype=np.int64)
    full = TokenStream(ids, 8, 12)
    parts = [TokenStream(ids, 8, 12, rank=r, world_size=4) for r in range(4)]
    assert all(len(p) == len(full) and p.rows == 2 for p in parts)
    for i in range(len(full)):
        x, y = full.batch(i)
        got = [p.batch(i) for p in parts]
        for r in range(4):
            assert torch.equal(got[r][0], x[r::4]) and torch.equal(got[r][1], y[r::4])
        union = torch.cat([g[0] for g in got])
        assert sorted(union[:, 0].tolist()) == sorted(x[:, 0].tolist())
    assert sum(p.tokens_per_pass for p in parts) == full.tokens_per_pass


def test_offset_and_bad_arguments():
    ids = np.arange(100)
    x, _ = TokenStream(ids, 2, 5, offset=3).batch(0)
    assert x[:, 0].tolist() == [3, 3 + 48]
    for kwargs, message in [
        ({"batch_size": 3, "world_size": 2}, "batch size 3 does not divide into 2 equal parts"),
        ({"rank": 2, "world_size": 2}, "rank must lie in 0..world_size-1"),
        ({"seq_len": 60}, "100 tokens are too few for 2 streams of sequence length 60"),
        ({"offset": 100}, "offset 100 lies outside the 100 tokens"),
    ]:
        args = {"batch_size": 2, "seq_len": 5, **kwargs}
        with pytest.raises(AstrosnnError, match=message):
            TokenStream(ids, **args)


def test_bits_per_byte():
    assert bits_per_byte(math.log(2), 1.0) == pytest.approx(1.0)
    # 4 bytes per token: the same loss per token is a quarter of the bits per byte
    assert bits_per_byte(2.0, 4.0) == pytest.approx(2.0 / math.log(2) / 4)
    assert bits_per_byte_total(2.0 * 100, 400) == pytest.approx(bits_per_byte(2.0, 4.0))
    assert perplexity(0.0) == 1.0 and perplexity(1e6) == math.inf
    with pytest.raises(AstrosnnError, match="bytes per token must be > 0"):
        bits_per_byte(1.0, 0.0)
