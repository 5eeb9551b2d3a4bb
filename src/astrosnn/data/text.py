"""Text corpora as token lists: embedded English, tiny-shakespeare, Penn Treebank, any local UTF-8 file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.sources import path_kind, read_file_bytes, require_files
from astrosnn.data.verify import check_known, verification_on
from astrosnn.errors import AstrosnnError, DataError

NAMED_CORPORA = ("default", "tinyshakespeare", "ptb")
EOS = "<eos>"


@dataclass(frozen=True)
class TextCorpus:
    name: str
    level: str  # "char" | "word"
    train: list[str]
    valid: list[str]
    test: list[str]
    vocab: tuple[str, ...]
    source: str

    @cached_property
    def index(self) -> dict[str, int]:
        """Token -> id."""
        return {t: i for i, t in enumerate(self.vocab)}

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids (int64); an error names the tokens that are not in the vocabulary."""
        index = self.index
        try:
            return np.fromiter((index[t] for t in tokens), dtype=np.int64, count=len(tokens))
        except KeyError:
            unknown = sorted({t for t in tokens if t not in index})
            shown = ", ".join(repr(t) for t in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise AstrosnnError(
                f"{len(unknown)} token(s) not in the {self.name} vocabulary: {shown}{more}"
            ) from None

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise AstrosnnError(f"token ids must lie in 0..{len(self.vocab) - 1} for {self.name}")
        sep = "" if self.level == "char" else " "
        return sep.join(self.vocab[i] for i in ids.tolist())


def read_text(path: Path, known: registry.RemoteFile | None = None) -> str:
    """A UTF-8 text file's content; missing, empty or non-UTF-8 files raise a DataError naming the file.

    With `known` (a registry entry), a file with another checksum is a ChecksumError."""
    raw = read_file_bytes(path)
    check_known(path, raw, known)
    if not raw.strip():
        raise DataError(f"{path}: the text file is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (invalid byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def char_corpus(name: str, text: str, source: str) -> TextCorpus:
    """Character level: splits 90% / 5% / 5% in order; vocab = sorted characters of the whole text."""
    n = len(text)
    a, b = int(n * 0.9), int(n * 0.95)
    return TextCorpus(
        name=name,
        level="char",
        train=list(text[:a]),
        valid=list(text[a:b]),
        test=list(text[b:]),
        vocab=tuple(sorted(set(text))),
        source=source,
    )


def _ptb_tokens(path: Path, known: registry.RemoteFile | None) -> list[str]:
    tokens: list[str] = []
    for line in read_text(path, known).splitlines():
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


def load_ptb(data_dir: str | Path | None = None, download: bool = True, verify: bool = True) -> TextCorpus:
    """Penn Treebank (Mikolov's LM version): word level, `<eos>` per line, official splits, 10k vocab.

    Each file must match its published md5 unless `verify=False` or $ASTROSNN_SKIP_CHECKSUMS=1."""
    folder = require_files(registry.PTB, data_dir, download)
    check = verification_on(verify)
    splits = [
        _ptb_tokens(folder / f.name, f if check else None)
        for f in (registry.PTB.file(f"ptb.{s}.txt") for s in ("train", "valid", "test"))
    ]
    vocab = set(splits[0])
    for split, tokens in zip(("valid", "test"), splits[1:]):
        unseen = set(tokens) - vocab
        if unseen:
            raise DataError(
                f"{folder / f'ptb.{split}.txt'}: {len(unseen)} word(s) not in the training vocabulary "
                f"(e.g. {', '.join(sorted(unseen)[:3])}); the files are not the standard PTB"
            )
    return TextCorpus("ptb", "word", *splits, vocab=tuple(sorted(vocab)), source=str(folder))


def default_text() -> str:
    """The standard library's pydoc topic help: English prose every Python install has."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("the embedded corpus needs the standard library's pydoc_data, which this Python lacks") from None
    return "\n\n".join(topics[k] for k in sorted(topics))


def load_corpus(
    name_or_path: str, data_dir: str | Path | None = None, download: bool = True, verify: bool = True
) -> TextCorpus:
    """"default", "tinyshakespeare", "ptb", or a path to a local UTF-8 text file (char level).

    The named corpora's files must match their published checksums unless `verify=False` or
    $ASTROSNN_SKIP_CHECKSUMS=1; a local file has no known checksum."""
    import platform

    name = str(name_or_path)
    if name == "default":
        return char_corpus("default", default_text(), f"pydoc_data.topics (Python {platform.python_version()})")
    if name == "tinyshakespeare":
        folder = require_files(registry.TINYSHAKESPEARE, data_dir, download)
        remote = registry.TINYSHAKESPEARE.file("input.txt")
        path = folder / remote.name
        known = remote if verification_on(verify) else None
        return char_corpus("tinyshakespeare", read_text(path, known), str(path))
    if name == "ptb":
        return load_ptb(data_dir, download, verify)
    path = Path(name).expanduser()
    kind = path_kind(path)
    if kind == "missing":
        raise DataError(f"unknown corpus {name!r}: not one of {', '.join(NAMED_CORPORA)} and no such file")
    if kind == "dir":
        raise DataError(f"{path}: is a folder, expected a UTF-8 text file")
    return char_corpus(path.stem, read_text(path), str(path))
