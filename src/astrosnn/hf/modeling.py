"""The Hugging Face model: :class:`AstroSNNForCausalLM` wraps a native astrosnn language model.

``self.model`` is the native model (built from ``config.astrosnn_kind`` and ``config.astrosnn_config``), so
the weights are ``model.<native keys>``. The recurrent state (membrane potentials, astrocyte memories,
token-shift buffers; an LSTM's (h, c); a Transformer's key/value window) is the generation cache: ``forward``
returns it as ``outputs.state`` when ``use_cache``, ``generate()`` passes it back, and after the prompt each
new token is one native ``step`` (constant cost per token), as ``astrosnn lm generate`` does.

Padding: a recurrent model reads a padded token into its state, so a prompt for ``generate()`` must not be
padded, and ``forward`` rejects left padding; right padding (lm-evaluation-harness' batches) is fine: the
logits of the real positions do not depend on the pads that follow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor
from transformers import GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from astrosnn.hf.configuration import AstroSNNHFConfig, native_model
from astrosnn.hf.folder import TIED_EMBED, TIED_HEAD, check_hf_folder


@dataclass
class AstroSNNCausalLMOutput(ModelOutput):
    """``loss`` (with ``labels``), ``logits (B, T, V)``, ``state``: the recurrent state after the last token."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    state: Any = None


def check_padding(attention_mask: Tensor | None, generating: bool = False) -> None:
    """Left padding (or holes) is an error; with `generating`, any padding is."""
    if attention_mask is None or bool(attention_mask.all()):
        return
    if generating:
        raise ValueError(
            "astrosnn: generate() needs unpadded prompts (a recurrent model reads pads into its state); "
            "generate one prompt at a time or batch prompts of equal length"
        )
    mask = attention_mask.long()
    if bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError(
            "astrosnn: left padding is not supported (a recurrent model reads pads into its state); "
            "pad on the right (tokenizer.padding_side = 'right')"
        )


class AstroSNNPreTrainedModel(PreTrainedModel):
    config_class = AstroSNNHFConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _is_stateful = True  # no assisted generation: a state cannot be rolled back
    _no_split_modules: list[str] = []

    def _init_weights(self, module: torch.nn.Module) -> None:
        """The native model initialises itself; loaded weights replace it."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.from_pretrained``; a local folder is checked first (one-line AstrosnnError for a
        corrupt or mismatched config or weights file)."""
        if isinstance(pretrained_model_name_or_path, str | Path) and Path(pretrained_model_name_or_path).is_dir():
            check_hf_folder(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


class AstroSNNForCausalLM(AstroSNNPreTrainedModel, GenerationMixin):
    """A native astrosnn language model behind the ``transformers`` causal-LM interface."""

    # a tied head (native tie_embeddings = config.tie_word_embeddings) is saved once, as the embedding
    _tied_weights_keys = (
        {TIED_HEAD: TIED_EMBED} if int(transformers.__version__.split(".")[0]) >= 5 else [TIED_HEAD]
    )

    def __init__(self, config: AstroSNNHFConfig) -> None:
        super().__init__(config)
        self.model = native_model(config)
        self.post_init()

    # ------------------------------------------------------------------ embeddings (transformers' API)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.model.head

    # ------------------------------------------------------------------------------------ forward

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        state: Any = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        inputs_embeds: Tensor | None = None,
        **kwargs: Any,
    ) -> AstroSNNCausalLMOutput | tuple:
        """``input_ids (B, T)`` -> logits ``(B, T, V)``; ``state`` continues a sequence (the cache).

        With ``labels`` the loss is the mean cross-entropy of the shifted labels (``-100`` ignored).
        """
        if inputs_embeds is not None or input_ids is None:
            raise ValueError("astrosnn: give input_ids (inputs_embeds are not supported)")
        check_padding(attention_mask)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if state is not None and input_ids.shape[1] == 1:
            logits, new_state = self.model.step(input_ids[:, 0], state)  # the recurrent form, as native generation
            logits = logits.unsqueeze(1)
        else:
            logits, new_state = self.model(input_ids, state)
        logits = logits.float()
        loss = None
        if labels is not None:
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
            loss = F.cross_entropy(shifted, labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        out = AstroSNNCausalLMOutput(loss=loss, logits=logits, state=new_state if use_cache else None)
        return_dict = True if return_dict is None else return_dict
        return out if return_dict else out.to_tuple()

    # --------------------------------------------------------------------------------- generation

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the state is the model's own, not a key/value cache

    def prepare_inputs_for_generation(
        self,
        input_ids: Tensor,
        state: Any = None,
        attention_mask: Tensor | None = None,
        use_cache: bool | None = None,
        inputs_embeds: Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The prompt once (no state yet), then only the last token with the carried state."""
        if inputs_embeds is not None:
            raise ValueError("astrosnn: generate() takes input_ids (inputs_embeds are not supported)")
        if use_cache is False:
            state = None  # full recompute each step
        if state is not None:
            return {"input_ids": input_ids[:, -1:], "state": state, "use_cache": use_cache}
        check_padding(attention_mask, generating=True)
        return {"input_ids": input_ids, "state": None, "use_cache": use_cache}

    def _update_model_kwargs_for_generation(
        self, outputs: ModelOutput, model_kwargs: dict[str, Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        model_kwargs = super()._update_model_kwargs_for_generation(outputs, model_kwargs, *args, **kwargs)
        model_kwargs["state"] = outputs.get("state")
        return model_kwargs

    def _reorder_cache(self, state: Any, beam_idx: Tensor) -> Any:
        """Beam search: pick the state rows of the surviving beams."""
        return reorder_state(self.model, state, beam_idx)


def reorder_state(model: torch.nn.Module, state: Any, index: Tensor) -> Any:
    """`state` with its batch rows taken at `index`; the batch dimension of each leaf is the one that differs
    between ``init_state(1)`` and ``init_state(2)`` (an LSTM's state is (layers, B, width))."""

    def pick(s: Any, one: Any, two: Any) -> Any:
        if isinstance(s, Tensor):
            differ = [i for i, (x, y) in enumerate(zip(one.shape, two.shape)) if x != y]
            return s.index_select(differ[0], index.to(s.device)) if differ else s
        if isinstance(s, tuple) and hasattr(s, "_fields"):
            return type(s)(*(pick(*z) for z in zip(s, one, two)))
        if isinstance(s, tuple | list):
            return type(s)(pick(*z) for z in zip(s, one, two))
        if isinstance(s, dict):
            return {k: pick(s[k], one[k], two[k]) for k in s}
        return s

    if state is None:
        return None
    return pick(state, model.init_state(1), model.init_state(2))
