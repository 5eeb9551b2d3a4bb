"""Hugging Face ``transformers`` integration (the optional ``hf`` extra: ``pip install astrosnn[hf]``).

- :class:`AstroSNNHFConfig` (``model_type`` "astrosnn"): the HF config, holding the native kind and config
  (named apart from :class:`astrosnn.lm.AstroSNNConfig`, the native model's config);
- :class:`AstroSNNForCausalLM`: the native model behind ``from_pretrained`` / ``generate()`` / lm-eval;
- :func:`export_checkpoint`: a native checkpoint folder -> an HF folder (config, safetensors, tokenizer);
- :func:`load_hf_folder`, :func:`is_hf_folder`: read an HF folder back (used by ``astrosnn lm generate``);
- :func:`build_tokenizer`: a char/word vocabulary (or a ``tokenizers`` JSON file) -> ``PreTrainedTokenizerFast``.

Importing this package registers the config and model with ``AutoConfig`` / ``AutoModelForCausalLM``;
exported folders also carry ``auto_map`` for ``trust_remote_code=True`` (that code imports the installed
astrosnn package).
"""

from __future__ import annotations

try:
    import transformers  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    from astrosnn.errors import AstrosnnError

    raise AstrosnnError(
        "the Hugging Face integration needs transformers and tokenizers: pip install 'astrosnn[hf]'"
    ) from e

from astrosnn.hf.configuration import MODEL_TYPE, AstroSNNHFConfig
from astrosnn.hf.convert import export_checkpoint, is_hf_folder, load_hf_folder
from astrosnn.hf.modeling import AstroSNNForCausalLM
from astrosnn.hf.tokenizer import build_tokenizer

__all__ = ["MODEL_TYPE", "AstroSNNForCausalLM", "AstroSNNHFConfig", "build_tokenizer", "export_checkpoint",
           "is_hf_folder", "load_hf_folder", "register_auto_classes"]  # fmt: skip


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know model_type "astrosnn" (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register(MODEL_TYPE, AstroSNNHFConfig, exist_ok=True)
    AutoModelForCausalLM.register(AstroSNNHFConfig, AstroSNNForCausalLM, exist_ok=True)


register_auto_classes()
