"""AstroSNN language model: protocol, recurrent vs sequence form, gradients, training sanity."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm import AstroSNNConfig, AstroSNNLM


def _model(**kw) -> AstroSNNLM:
    torch.manual_seed(0)
    # zero_init_out=False: with the default zero start the blocks would not reach the logits yet
    opts = dict(vocab_size=11, width=16, layers=2, heads=2, chunk_size=5, zero_init_out=False)
    opts.update(kw)
    return AstroSNNLM(AstroSNNConfig.from_dict(opts)).double()  # AM-SU options flat


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"astrocyte": False},
        {"norm": "denominator"},
        {"reset": False, "token_shift": False},
        {"chunk_size": 1, "cut_reset_grad": False},
        {"chunk_size": 7, "reset": False},
        {"chunk_size": 16, "token_shift": False},
        {"chunk_size": 23},
    ],
)
def test_step_and_halves_match_full_forward(options):
    model = _model(**options)
    ids = torch.randint(0, 11, (3, 23), generator=torch.Generator().manual_seed(1))
    logits, _ = model(ids)
    assert logits.shape == (3, 23, 11)
    state = model.init_state(3)
    steps = []
    for t in range(ids.shape[1]):
        out, state = model.step(ids[:, t], state)
        steps.append(out)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-6, rtol=0)
    first, state = model(ids[:, :10])
    second, _ = model(ids[:, 10:], state)
    assert torch.allclose(torch.cat([first, second], 1), logits, atol=1e-6, rtol=0)


def test_config_round_trips_through_json_and_kind():
    model = _model(astrocyte=False)
    d = json.loads(json.dumps(dataclasses.asdict(model.config)))
    assert AstroSNNConfig(**d) == model.config
    assert model.kind == "lif-snn"
    assert _model().kind == "astrosnn"


def test_bad_ids_raise():
    model = _model()
    with pytest.raises(AstrosnnError, match="shape"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(AstrosnnError, match=r"\[0, 11\)"):
        model(torch.full((1, 2), 11))
    with pytest.raises(AstrosnnError, match="integer"):
        model(torch.zeros(1, 2))


def test_gradients_reach_every_parameter_and_are_finite():
    model = _model(tie_embeddings=False, threshold_learnable=True)
    ids = torch.randint(0, 11, (2, 30), generator=torch.Generator().manual_seed(2))
    logits, _ = model(ids)
    torch.nn.functional.cross_entropy(logits.reshape(-1, 11), ids.reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_zero_init_out_starts_as_embedding_to_head():
    model = _model(zero_init_out=True)
    ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(4))
    logits, _ = model(ids)
    assert torch.allclose(logits, model.head(model.norm(model.embed(ids))))
    assert not torch.allclose(_model()(ids)[0], logits)


def test_tied_head_shares_the_embedding():
    tied, untied = _model(), _model(tie_embeddings=False)
    assert tied.head.weight is tied.embed.weight
    assert untied.num_parameters() - tied.num_parameters() == 11 * 16


def _delayed_recall(batch: int, symbols: int, length: int, delay: int, gen: torch.Generator):
    """Symbols 0..symbols-1, blank = symbols, cue = symbols + 1; recall after `delay` blanks."""
    data = torch.randint(0, symbols, (batch, length), generator=gen)
    blank = torch.full((batch, delay), symbols)
    cue = torch.full((batch, length), symbols + 1)
    ids = torch.cat([data, blank, cue], 1)
    targets = torch.cat([torch.full((batch, length + delay), -100), data], 1)
    return ids, targets


@pytest.mark.parametrize("kind_options", [{}, {"astrocyte": False}])
def test_twenty_steps_of_delayed_recall_with_delay_256_stay_finite(kind_options):
    torch.manual_seed(0)
    model = AstroSNNLM(AstroSNNConfig.from_dict(dict(vocab_size=10, width=32, layers=2, heads=2, **kind_options)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids, targets = _delayed_recall(8, 8, 12, 256, gen)
        assert ids.shape[1] == 280
        logits, _ = model(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        for name, p in model.named_parameters():
            assert torch.isfinite(p.grad).all(), name
        opt.step()


def test_small_model_overfits_a_short_text():
    text = "the astrocyte listens to the neuron and the neuron spikes back."
    vocab = sorted(set(text))
    ids = torch.tensor([[vocab.index(c) for c in text]])
    torch.manual_seed(0)
    model = AstroSNNLM(AstroSNNConfig(vocab_size=len(vocab), width=32, layers=2, heads=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        logits, _ = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:])
        if loss.item() < 0.01:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    assert torch.equal(logits.argmax(-1), ids[:, 1:])
