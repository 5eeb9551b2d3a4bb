"""Extension points: the model registry, nested configs (flat options and old flat checkpoints), the LM
protocol, the astrocyte memory rules, the scan backends and the package's public API."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import astrosnn.lm as lm
from astrosnn.errors import AstrosnnError
from astrosnn.lm import (
    AMSUConfig,
    AstroSNNConfig,
    build_model,
    count_parameters,
    load_checkpoint,
    model_kinds,
    register_model,
    save_checkpoint,
)
from astrosnn.lm.base import DEFAULT_SIZE, LanguageModel, LanguageModelBase
from astrosnn.lm.memory import memory_names, memory_rule
from astrosnn.lm.registry import _MODELS
from astrosnn.lm.scan import scan_backend_names

V = 11


def test_public_api_names_resolve():
    for name in ("build_model", "count_parameters", "train", "TrainConfig", "generate", "load_checkpoint", "AMSU",
                 "AMSUConfig", "AstroSNNConfig", "register_model", "model_kinds"):
        assert getattr(lm, name) is not None
    assert callable(lm.train) and callable(lm.generate)  # functions, not the submodules
    with pytest.raises(AttributeError):
        lm.no_such_name  # noqa: B018


def test_every_registered_model_follows_the_protocol_and_size_defaults():
    for kind in model_kinds():
        model = build_model(kind, V)
        assert isinstance(model, LanguageModel) and model.kind == kind
        assert model.config.width == DEFAULT_SIZE.width and model.config.layers == DEFAULT_SIZE.layers


def test_unknown_kind_is_one_line_listing_the_choices():
    with pytest.raises(AstrosnnError) as err:
        build_model("gru", V)
    assert "\n" not in str(err.value) and all(kind in str(err.value) for kind in model_kinds())


def test_am_su_options_reach_the_nested_section_flat_or_dotted():
    model = build_model("astrosnn", V, width=16, heads=2, threshold=0.5, chunk_size=16, **{"amsu.norm": "denominator"})
    c = model.config
    assert (c.amsu.threshold, c.amsu.chunk_size, c.amsu.norm) == (0.5, 16, "denominator")
    assert (c.amsu.width, c.amsu.heads) == (16, 2)  # the section follows the model's size
    assert model.blocks[0].lif.theta[0] == 0.5  # the MLP neurons share the AM-SU threshold
    with pytest.raises(AstrosnnError, match="unknown option.*amsu.colour"):
        build_model("astrosnn", V, **{"amsu.colour": 1})


def test_nested_and_flat_dicts_give_the_same_config():
    config = build_model("lif-snn", V, width=16, heads=2, norm="denominator").config
    nested = json.loads(json.dumps(dataclasses.asdict(config)))
    assert AstroSNNConfig(**nested) == config
    flat = {k: v for k, v in nested.items() if k != "amsu"}
    flat.update({k: v for k, v in nested["amsu"].items() if k not in ("width", "heads", "memory")})
    assert AstroSNNConfig.from_dict(flat) == config


OLD_FLAT_CONFIG = {  # model_config of a checkpoint written before the AM-SU section existed
    "vocab_size": V, "width": 16, "layers": 1, "heads": 2, "mlp_ratio": 4, "tie_embeddings": True,
    "astrocyte": True, "lambda_learnable": True, "lambda_init": None, "sigma": "sigmoid", "phi": "elu+1",
    "norm": "rms", "gain_init": 1.0, "reset": True, "cut_reset_grad": True, "token_shift": True, "shift_size": 4,
    "threshold": 1.0, "threshold_learnable": False, "beta_init": 0.9, "mlp_beta_init": 0.3, "zero_init_out": True,
    "surrogate": "arctan", "surrogate_alpha": None, "chunk_size": 32, "scan_backend": "auto", "dropout": 0.0,
}  # fmt: skip


def test_a_checkpoint_with_an_old_flat_config_still_loads(tmp_path):
    torch.manual_seed(0)
    model = build_model("astrosnn", V, width=16, layers=1, heads=2)
    save_checkpoint(tmp_path, model, vocab=[str(i) for i in range(V)], level="char", step=3)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_config"] = OLD_FLAT_CONFIG
    config["format_version"] = 1  # as old checkpoints were written: no checksums
    config.pop("config_sha256"), config.pop("weights_sha256")
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_checkpoint(tmp_path).model
    assert loaded.config == model.config
    ids = torch.randint(0, V, (2, 9))
    torch.testing.assert_close(loaded(ids)[0], model.eval()(ids)[0], rtol=0, atol=0)


@dataclass
class BigramConfig:
    vocab_size: int
    width: int = 8
    tie_embeddings: bool = False


class BigramLM(LanguageModelBase):
    """The smallest model: next-token logits from the current token alone (stateless)."""

    kind = "bigram"
    carries_state = False

    def __init__(self, config: BigramConfig) -> None:
        super().__init__(config)
        self._make_head(bias=True)

    def init_state(self, batch_size: int, device=None, dtype=None):  # noqa: ANN001, ANN201
        return None

    def forward(self, ids: torch.Tensor, state=None):  # noqa: ANN001, ANN201
        self.check_ids(ids)
        return self.head(self.embed(ids)), None


def test_a_new_model_is_one_class_and_one_registration(tmp_path):
    register_model("bigram", BigramConfig, BigramLM)
    try:
        model = build_model("bigram", V, width=4, heads=2, seq_len=9)  # common options it lacks are dropped
        assert isinstance(model, nn.Module) and count_parameters(model) == V * 4 + 4 * V + V
        logits, _ = model.step(torch.tensor([1, 2]))  # step comes from the base class
        assert logits.shape == (2, V)
        save_checkpoint(tmp_path, model, vocab=[str(i) for i in range(V)], level="char")
        assert load_checkpoint(tmp_path).model.config == model.config
    finally:
        _MODELS.pop("bigram")


def test_memory_and_scan_backends_are_registries():
    assert memory_names()[0] == "hebbian" and AMSUConfig().memory == "hebbian"
    assert memory_rule("hebbian") is not None
    with pytest.raises(AstrosnnError, match="memory 'hopfield'"):
        AMSUConfig(memory="hopfield")
    assert scan_backend_names() == ("auto", "numba", "triton", "torch")
    with pytest.raises(AstrosnnError, match="scan_backend 'cuda'"):
        AMSUConfig(scan_backend="cuda")
