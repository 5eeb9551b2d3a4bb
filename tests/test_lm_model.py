"""AstroSNN language model: protocol, recurrent vs sequence form, gradients, training sanity."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm.model import AstroSNNConfig, AstroSNNLM


def _model(**kw) -> AstroSNNLM:
    torch.manual_seed(0)
    opts = dict(vocab_size=11, width=16, layers=2, heads=2, chunk_size=5)
    opts.update(kw)
    return AstroSNNLM(AstroSNNConfig(**opts)).double()


@pytest.mark.parametrize(
    "options",
    [{}, {"astrocyte": False}, {"norm": "denominator"}, {"reset": False, "token_shift": False}],
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
