"""Spike rates and operation counts (astrosnn.lm.energy)."""

from __future__ import annotations

import pytest
import torch

from astrosnn.lm import build_model
from astrosnn.lm.energy import AC_PJ, MAC_PJ, energy_pj, op_counts, spike_rates


def _model(kind: str):
    torch.manual_seed(0)
    return build_model(kind, 30, width=16, layers=2, heads=2, seq_len=32, zero_init_out=False, threshold=0.5)


def test_spike_rates_per_layer_match_a_direct_count():
    model = _model("astrosnn")
    ids = torch.randint(0, 30, (200,), generator=torch.Generator().manual_seed(0))
    rates = spike_rates(model, ids, batch_size=2, seq_len=25)
    assert set(rates) == {"block0.amsu", "block0.mlp", "block1.amsu", "block1.mlp"}
    assert all(0.0 <= r <= 1.0 for r in rates.values()) and any(r > 0 for r in rates.values())
    with torch.no_grad():  # the same count by hand for the first block's MLP
        x = model.embed(ids[:200].view(2, 100))
        block = model.blocks[0]
        spikes, _ = block.amsu(block.norm1(x))
        h = x + block.out(spikes)
        mlp, _ = block.lif(block.fc1(block.norm2(h)))
    assert rates["block0.mlp"] == pytest.approx(float(mlp.mean()), rel=1e-6)


def test_models_without_spikes_have_no_rates():
    model = build_model("lstm", 30, width=16, layers=1)
    assert spike_rates(model, torch.zeros(100, dtype=torch.long)) == {}


@pytest.mark.parametrize("kind", ["astrosnn", "lif-snn", "lstm", "transformer", "linear-attention"])
def test_op_counts_and_energy(kind):
    model = _model(kind) if kind not in ("lstm", "transformer") else build_model(kind, 30, width=16, layers=2)
    rows = op_counts(model, {"block0.mlp": 0.1, "block1.mlp": 0.1, "block0.amsu": 0.2, "block1.amsu": 0.2})
    totals = energy_pj(rows)
    assert totals["energy_pj"] == pytest.approx(MAC_PJ * totals["mac"] + AC_PJ * totals["ac"])
    spiking = kind in ("astrosnn", "lif-snn")
    assert (totals["ac"] > 0) == spiking
    if spiking:  # W_2 s: rate * hidden * d per layer
        w2 = next(r for r in rows if r["product"].startswith("W_2 s"))
        assert w2["ops"] == pytest.approx(2 * 0.1 * 64 * 16)


def test_spike_rates_read_a_token_folders_uint16_split():
    """A token folder's split is a uint16 memmap: the rates read it as int64 ids, equal to the int64 stream."""
    import numpy as np

    model = _model("astrosnn")
    ids = torch.randint(0, 30, (200,), generator=torch.Generator().manual_seed(0))
    as_memmap_dtype = ids.numpy().astype(np.uint16)
    assert spike_rates(model, as_memmap_dtype, batch_size=2, seq_len=25) == spike_rates(
        model, ids, batch_size=2, seq_len=25
    )
