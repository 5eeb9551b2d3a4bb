"""Tokenizers for exported models: a native char/word vocabulary, or a ``tokenizers`` JSON file (BPE ...),
as a ``PreTrainedTokenizerFast``.

- char level: a ``WordLevel`` model over single characters, a pre-tokenizer isolating every character
  (spaces and newlines included) and a ``Fuse`` decoder, so ``decode`` gives the text back exactly;
- word level: ``WordLevel`` over whitespace-split words, decoded with single spaces (as ``astrosnn lm
  generate`` prints them).

Char and word vocabularies have no special tokens and the head is not widened for one: the end-of-text
token (lm-evaluation-harness' ``eot_token_id``) and the pad token are an existing token, "\\n" for
characters (``<eos>`` for words) when the vocabulary has it. ``decode(..., skip_special_tokens=True)``
therefore drops that token; the model's generation config sets no ``eos_token_id``, so ``generate()``
stops at ``max_new_tokens`` as native generation does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from astrosnn.errors import AstrosnnError

EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "\n")


def vocabulary_tokenizer(vocab: Sequence[str], level: str) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` for a native char or word vocabulary (ids = positions in `vocab`)."""
    index = {token: i for i, token in enumerate(vocab)}
    if len(index) != len(vocab):
        raise AstrosnnError("the vocabulary has duplicate tokens")
    unk = "<unk>" if "<unk>" in index else None
    tok = Tokenizer(models.WordLevel(index, unk_token=unk))
    if level == "char":
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
    elif level == "word":
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        raise AstrosnnError(f"no tokenizer for a {level!r}-level vocabulary: give a tokenizers JSON file")
    return tok


def load_tokenizer_file(path: str | Path) -> Tokenizer:
    """A ``tokenizers`` JSON file (``Tokenizer.save``); a missing or bad file is an AstrosnnError."""
    path = Path(path)
    if not path.is_file():
        raise AstrosnnError(f"tokenizer {path}: no such file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception
        raise AstrosnnError(f"tokenizer {path}: not a tokenizers JSON file ({str(e).splitlines()[0]})") from None


def wrap_tokenizer(tok: Tokenizer, vocab_size: int, eos_token: str | None = None) -> PreTrainedTokenizerFast:
    """`tok` as a ``PreTrainedTokenizerFast``; its ids must fit the model's `vocab_size`."""
    size = tok.get_vocab_size(with_added_tokens=True)
    if size > vocab_size:
        raise AstrosnnError(f"the tokenizer has {size} tokens, the model only {vocab_size}")
    known = tok.get_vocab(with_added_tokens=True)
    if eos_token is None:
        eos_token = next((t for t in EOS_CANDIDATES if t in known), None)
    elif eos_token not in known:
        raise AstrosnnError(f"end-of-text token {eos_token!r} is not in the tokenizer's vocabulary")
    if eos_token is None:  # no usual candidate: the first token
        eos_token = tok.id_to_token(0)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos_token,
        pad_token=eos_token,
        unk_token="<unk>" if "<unk>" in known else None,
        clean_up_tokenization_spaces=False,
        padding_side="right",  # a recurrent model must not see pads before the text
    )


def build_tokenizer(
    vocab: Sequence[str] | None = None,
    level: str = "char",
    *,
    vocab_size: int | None = None,
    tokenizer_file: str | Path | None = None,
    eos_token: str | None = None,
) -> PreTrainedTokenizerFast:
    """The HF tokenizer of a model: from `tokenizer_file` (a ``tokenizers`` JSON file, e.g. a trained BPE)
    when given, else from the native `vocab` and `level`."""
    if tokenizer_file is not None:
        tok = load_tokenizer_file(tokenizer_file)
    elif vocab is not None:
        tok = vocabulary_tokenizer(vocab, level)
    else:
        raise AstrosnnError("build_tokenizer needs a vocabulary or a tokenizer file")
    size = vocab_size if vocab_size is not None else tok.get_vocab_size(with_added_tokens=True)
    return wrap_tokenizer(tok, size, eos_token)
