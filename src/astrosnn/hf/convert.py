"""Conversion between native checkpoints and Hugging Face folders, with one-line errors for bad folders.

An exported folder holds ``config.json`` (model_type "astrosnn", the native kind and config, ``auto_map``),
``model.safetensors`` (keys ``model.<native keys>``), ``generation_config.json``, the tokenizer files
(``tokenizer.json``, ``tokenizer_config.json``) and ``modeling_astrosnn.py``: the ``trust_remote_code``
entry point, which imports the installed astrosnn package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast

from astrosnn.errors import AstrosnnError
from astrosnn.hf.configuration import AstroSNNHFConfig, native_model
from astrosnn.hf.folder import CONFIG, PREFIX, TIED_EMBED, TIED_HEAD, WEIGHTS, check_hf_folder, tied
from astrosnn.hf.modeling import AstroSNNForCausalLM
from astrosnn.hf.tokenizer import build_tokenizer
from astrosnn.lm.checkpoint import load_checkpoint, load_weights
from astrosnn.runinfo import load_tensors

REMOTE_CODE = "modeling_astrosnn.py"
AUTO_MAP = {
    "AutoConfig": "modeling_astrosnn.AstroSNNHFConfig",
    "AutoModelForCausalLM": "modeling_astrosnn.AstroSNNForCausalLM",
}
REMOTE_SOURCE = '''"""trust_remote_code entry point of an exported astrosnn model; requires astrosnn installed
(pip install 'astrosnn[hf]')."""

from astrosnn.hf import AstroSNNForCausalLM, AstroSNNHFConfig

__all__ = ["AstroSNNForCausalLM", "AstroSNNHFConfig"]
'''


def is_hf_folder(directory: str | Path) -> bool:
    """Whether `directory` holds a Hugging Face config.json (``model_type``) rather than a native checkpoint."""
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_type" in config and "format" not in config


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    tokenizer_file: str | Path | None = None,
    eos_token: str | None = None,
) -> Path:
    """Write the native checkpoint folder `checkpoint` as a Hugging Face folder `out`; returns `out`.

    `tokenizer_file`: a ``tokenizers`` JSON file (e.g. a trained BPE) to ship instead of a tokenizer built
    from the checkpoint's char/word vocabulary. A BPE run ships the tokenizer stored (and hashed) beside it.
    """
    ckpt = load_checkpoint(checkpoint)
    if tokenizer_file is None and ckpt.level == "bpe":
        tokenizer_file = Path(checkpoint) / ckpt.config["tokenizer"]["file"]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AstrosnnError(f"{out}: exists and is not a folder")
    vocab_size = ckpt.model.config.vocab_size
    tokenizer = build_tokenizer(ckpt.vocab, ckpt.level, vocab_size=vocab_size, tokenizer_file=tokenizer_file,
                                eos_token=eos_token)  # fmt: skip
    config = AstroSNNHFConfig(
        astrosnn_kind=ckpt.kind,
        astrosnn_config=ckpt.config["model_config"],
        vocab_level="tokenizer" if tokenizer_file is not None else ckpt.level,
        auto_map=dict(AUTO_MAP),
        astrosnn_step=ckpt.step,
    )
    model = AstroSNNForCausalLM(config)
    model.model.load_state_dict(ckpt.model.state_dict())
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(max_new_tokens=300, do_sample=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / REMOTE_CODE).write_text(REMOTE_SOURCE, encoding="utf-8")
    return out


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of `directory`/model.safetensors, with the ``model.`` prefix removed."""
    path = Path(directory) / WEIGHTS
    tensors = load_tensors(path)
    return {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in tensors.items()}


@dataclass
class LoadedHF:
    """An exported folder read back: the native model (eval mode), its tokenizer and config."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    config: AstroSNNHFConfig
    kind: str
    level: str
    vocab: tuple[str, ...] | None  # the native vocabulary (char/word level), else None


def load_hf_folder(directory: str | Path) -> LoadedHF:
    """Load an exported folder as a native model + tokenizer (what ``astrosnn lm generate`` uses)."""
    directory = Path(directory)
    config = check_hf_folder(directory)
    model = native_model(config)
    weights = read_weights(directory)
    if tied(config):  # saved once, as the embedding
        weights[TIED_HEAD[len(PREFIX):]] = weights[TIED_EMBED[len(PREFIX):]]
    load_weights(model, weights, directory / WEIGHTS)
    model.eval()
    tokenizer = load_tokenizer(directory)
    vocab = None
    if config.vocab_level in ("char", "word"):
        table = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
        by_id = {i: t for t, i in table.items()}
        if sorted(by_id) == list(range(model.config.vocab_size)):
            vocab = tuple(by_id[i] for i in range(model.config.vocab_size))
    return LoadedHF(model, tokenizer, config, config.astrosnn_kind, config.vocab_level, vocab)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    directory = Path(directory)
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise AstrosnnError(f"{path}: missing (export the model with its tokenizer)")
    try:
        return PreTrainedTokenizerFast.from_pretrained(str(directory))
    except Exception as e:
        raise AstrosnnError(f"{path}: cannot load the tokenizer ({str(e).splitlines()[0]})") from None
