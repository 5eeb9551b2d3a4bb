"""Memory-retention task generators: layout, targets, masks; a model step on them is finite."""

from __future__ import annotations

import torch

from astrosnn.lm import build_model
from astrosnn.lm.tasks import TaskBatch, delayed_recall, masked_accuracy, masked_loss, mqar


def test_delayed_recall_layout():
    g = torch.Generator().manual_seed(0)
    b = delayed_recall(5, delay=7, length=4, symbols=6, generator=g)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (5, 2 * 4 + 7)
    assert b.vocab_size == 8
    blank, go = 6, 7
    assert torch.equal(b.targets[:, 11:], b.inputs[:, :4])  # the symbols come back after the delay
    assert (b.inputs[:, 4:11] == blank).all() and (b.inputs[:, 11] == go).all() and (b.inputs[:, 12:] == blank).all()
    assert b.mask.sum() == 5 * 4 and b.mask[:, 11:].all()
    assert int(b.inputs[:, :4].max()) < 6


def test_mqar_targets_are_the_paired_values():
    g = torch.Generator().manual_seed(1)
    b = mqar(4, pairs=6, queries=5, keys=10, values=8, generator=g)
    assert b.inputs.shape == (4, 17) and b.vocab_size == 18 and b.mask.sum() == 20
    for row in range(4):
        keys, vals = b.inputs[row, 0:12:2].tolist(), b.inputs[row, 1:12:2].tolist()
        assert len(set(keys)) == 6 and all(k < 10 for k in keys) and all(10 <= v < 18 for v in vals)
        table = dict(zip(keys, vals))
        for t in range(12, 17):
            assert b.targets[row, t].item() == table[b.inputs[row, t].item()]


def test_masked_metrics_score_only_the_masked_positions():
    b = delayed_recall(3, delay=2, length=3, symbols=4, generator=torch.Generator().manual_seed(2))
    perfect = torch.nn.functional.one_hot(b.targets, b.vocab_size).float() * 20
    perfect[~b.mask] = 0  # unscored positions are wrong on purpose
    assert masked_accuracy(perfect, b) == 1.0
    assert float(masked_loss(perfect, b)) < 1e-6
    assert isinstance(b, TaskBatch)


def test_a_few_training_steps_on_delayed_recall_stay_finite():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    model = build_model("lstm", 18, width=16, layers=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(5):
        b = delayed_recall(4, delay=64, length=4, symbols=16, generator=g)
        logits, _ = model(b.inputs)
        loss = masked_loss(logits, b)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
