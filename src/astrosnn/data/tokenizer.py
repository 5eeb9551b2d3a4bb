"""Tokenizers for token files: a character vocabulary (no dependency) and byte-level BPE (Hugging Face
`tokenizers`, installed by the `lm` extra and imported only when BPE is used).

Both split text the same way for streaming: `safe_cut` finds positions where cutting the text changes
neither the characters nor the byte-level BPE pre-tokens, so encoding a text piece by piece gives the same
ids as encoding it at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from astrosnn.data.sources import read_file_bytes
from astrosnn.errors import AstrosnnError, DataError

INSTALL_HINT = "pip install 'astrosnn[lm]'"
MIN_BPE_VOCAB = 256  # the byte alphabet; `tokenizers` silently returns 256 tokens for any smaller request
MAX_VOCAB = 2**32 - 1
DEFAULT_BPE_VOCAB = 4096


def require_tokenizers():
    """The `tokenizers` module, or one line saying how to install it."""
    try:
        import tokenizers
    except ImportError:
        raise AstrosnnError(
            f"byte-level BPE needs the Hugging Face 'tokenizers' package, which is not installed: {INSTALL_HINT}"
        ) from None
    return tokenizers


# --- cutting text where neither characters nor BPE pre-tokens change ------------------------------------


def _is_safe(text: str, p: int) -> bool:
    return 0 < p < len(text) and text[p] in " \n" and not text[p - 1].isspace()


def safe_cut(text: str, hi: int, lo: int = 0) -> int:
    """The largest p with lo < p <= hi where text[p] is a space or newline after a non-space; -1 if none.

    Byte-level BPE's pre-tokenizer (GPT-2 pattern) never joins such a non-space and the whitespace after it
    into one pre-token, and a whitespace run starting at p is matched the same with or without what precedes
    it, so text[:p] and text[p:] encode to the ids of text."""
    p = min(hi, len(text) - 1)
    while p > lo:
        p = max(text.rfind(" ", lo + 1, p + 1), text.rfind("\n", lo + 1, p + 1))
        if p <= lo:
            return -1
        if not text[p - 1].isspace():
            return p
        p -= 1
    return -1


def _next_safe(text: str, lo: int) -> int:
    """The smallest safe p >= lo, or -1."""
    p = lo
    while p < len(text):
        cands = [i for i in (text.find(" ", p), text.find("\n", p)) if i >= 0]
        if not cands:
            return -1
        p = min(cands)
        if _is_safe(text, p):
            return p
        p += 1
    return -1


def split_pieces(blocks: Iterable[str], piece_chars: int, force_chars: int) -> Iterator[str]:
    """Re-cut a stream of text blocks into pieces of about `piece_chars` characters at safe positions.

    A run of more than `force_chars` characters without a safe position is cut where it stands (the only
    case in which the pieces' ids can differ from the whole text's ids, at that one cut)."""
    carry = ""
    for block in blocks:
        buf = carry + block if carry else block
        end = safe_cut(buf, len(buf) - 1)
        if end <= 0:
            if len(buf) >= force_chars:
                yield buf
                carry = ""
            else:
                carry = buf
            continue
        carry = buf[end:]
        start = 0
        while end - start > piece_chars:
            q = safe_cut(buf, start + piece_chars, start)
            if q < 0:
                q = _next_safe(buf, start + piece_chars)
            if q < 0 or q >= end:
                break
            yield buf[start:q]
            start = q
        yield buf[start:end]
    if carry:
        yield carry


# --- character level -----------------------------------------------------------------------------------


class CharTokenizer:
    """Characters in code-point order (the order of `TextCorpus.vocab`: sorted(set(text))), id = position."""

    kind = "char"

    def __init__(self, vocab: Sequence[str], where: str = "character vocabulary"):
        vocab = tuple(vocab)
        if not vocab:
            raise DataError(f"{where}: the vocabulary is empty")
        for i, c in enumerate(vocab):
            if not isinstance(c, str) or len(c) != 1:
                raise DataError(f"{where}: entry {i} ({c!r}) is not a single character")
            if i and c <= vocab[i - 1]:
                raise DataError(f"{where}: the characters must be unique and sorted ({vocab[i - 1]!r} before {c!r})")
        self.vocab = vocab
        cps = np.fromiter((ord(c) for c in vocab), dtype=np.int64, count=len(vocab))
        self._lut = np.full(int(cps[-1]) + 1, -1, dtype=np.int32)  # code point -> id (at most 4.4 MB)
        self._lut[cps] = np.arange(len(cps), dtype=np.int32)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, where: str = "") -> np.ndarray:
        """Ids (int64); characters outside the vocabulary are an error naming them."""
        return self.encode_int32(text, where).astype(np.int64)

    def encode_int32(self, text: str, where: str = "") -> np.ndarray:
        """Ids as int32 (4 bytes a character while streaming, not 8)."""
        try:
            cps = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        except UnicodeEncodeError as e:
            raise AstrosnnError(f"{where or 'text'}: cannot encode {text[e.start]!r} (a lone surrogate)") from None
        top = len(self._lut) - 1
        ids = self._lut[np.minimum(cps, top)]
        bad = (ids < 0) | (cps > top)
        if bad.any():
            unknown = sorted({chr(c) for c in np.unique(cps[bad]).tolist()})
            shown = ", ".join(repr(c) for c in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise AstrosnnError(
                f"{where or 'text'}: {len(unknown)} character(s) not in the vocabulary: {shown}{more}"
            )
        return ids

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise AstrosnnError(f"token ids must lie in 0..{len(self.vocab) - 1} for this character vocabulary")
        return "".join(self.vocab[i] for i in ids.tolist())

    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes of each token id (int64)."""
        return np.array([len(c.encode("utf-8")) for c in self.vocab], dtype=np.int64)

    def to_json(self) -> bytes:
        return json.dumps({"kind": "char", "vocab": list(self.vocab)}, ensure_ascii=True).encode("ascii")

    @classmethod
    def from_file(cls, path: Path) -> CharTokenizer:
        try:
            data = json.loads(read_file_bytes(path).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: not a JSON character vocabulary ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict) or data.get("kind") != "char" or not isinstance(data.get("vocab"), list):
            raise DataError(f"{path}: not a character vocabulary (expected {{\"kind\": \"char\", \"vocab\": [...]}})")
        return cls(data["vocab"], where=str(path))


def collect_chars(pieces: Iterable[str]) -> CharTokenizer:
    chars: set[str] = set()
    for piece in pieces:
        chars.update(piece)
    return CharTokenizer(sorted(chars))


# --- byte-level BPE ------------------------------------------------------------------------------------


def train_bpe(pieces: Iterable[str], vocab_size: int):
    """A byte-level BPE `tokenizers.Tokenizer` (no prefix space, no special tokens) trained on the pieces.

    The vocabulary has the 256 byte tokens plus merges up to `vocab_size`; a small corpus can run out of
    merges first (the result's get_vocab_size() is then smaller)."""
    tk = require_tokenizers()
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pieces, trainer)
    return tok


def load_bpe(path: Path):
    """A `tokenizers.Tokenizer` from a tokenizer.json; a file that is not one is a DataError naming it."""
    tk = require_tokenizers()
    raw = read_file_bytes(path)
    try:
        tok = tk.Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as e:  # tokenizers raises its own Exception type for malformed files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(f"{path}: not a Hugging Face tokenizer.json ({first})") from None
    return tok


def bpe_encode(tok, pieces: list[str]) -> np.ndarray:
    """Ids (int64) of the pieces, concatenated (no special tokens added)."""
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets: about twice as fast, same ids
    encode = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    encs = encode(pieces, add_special_tokens=False)
    if not encs:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encs])


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted (the alphabet ByteLevel tokens are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def bpe_byte_lengths(tok) -> np.ndarray:
    """Bytes of text each id stands for (int64): one per character of a byte-level token, the UTF-8 length
    of the content for special or added tokens."""
    table = _byte_decoder()
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    out = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for token, i in tok.get_vocab().items():
        if i >= len(out):
            continue
        if token not in special and all(c in table for c in token):
            out[i] = len(token)
        else:
            out[i] = len(token.encode("utf-8"))
    return out
