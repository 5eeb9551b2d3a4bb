"""Token folders: a corpus encoded once into memory-mapped token files plus a JSON manifest.

`prepare_corpus` streams the text (a named corpus, a UTF-8 file or a folder of .txt files) chunk by chunk,
builds the tokenizer (character vocabulary, or byte-level BPE trained on the training split with Hugging
Face `tokenizers`), and writes

    <out>/train.bin, validation.bin[, test.bin]   token ids, little-endian uint16 (vocab <= 65536) or uint32
    <out>/vocab.json | tokenizer.json             the tokenizer
    <out>/manifest.json                           written last, atomically: a folder without it is incomplete

`open_token_corpus` checks the folder against its manifest (sizes always, sha256 unless verification is
off) and opens each split read-only with np.memmap; `TokenStream` (token_sampler.py) batches it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.sources import list_dir, oserror_text, path_kind, read_file_bytes, require_files
from astrosnn.data.text import NAMED_CORPORA, load_corpus, read_text
from astrosnn.data.token_sampler import bits_per_byte
from astrosnn.data.tokenizer import (
    DEFAULT_BPE_VOCAB,
    MAX_VOCAB,
    MIN_BPE_VOCAB,
    CharTokenizer,
    bpe_byte_lengths,
    bpe_encode,
    collect_chars,
    load_bpe,
    split_pieces,
    train_bpe,
)
from astrosnn.data.verify import OPT_OUT, verification_on
from astrosnn.errors import AstrosnnError, ChecksumError, DataAccessError, DataError

FORMAT = "astrosnn-tokens"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_KINDS = ("char", "bpe")
TOKENIZER_FILES = {"char": "vocab.json", "bpe": "tokenizer.json"}
SPLITS = ("train", "validation", "test")
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
DEFAULT_CHUNK_BYTES = 1 << 22
DEFAULT_VALIDATION_FRACTION = 0.1
PIECE_CHARS = 1 << 16  # encode_batch unit: pieces of about 64k characters
_HASH_BLOCK = 1 << 22


# --- the manifest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitInfo:
    file: str
    tokens: int
    source_bytes: int  # UTF-8 bytes of the text the tokens encode (bits per byte = nats / ln 2 / these)
    sha256: str  # of the token file
    source_sha256: str  # of that text

    @property
    def bytes_per_token(self) -> float:
        return self.source_bytes / self.tokens


@dataclass(frozen=True)
class TokenManifest:
    folder: Path
    tokenizer: str  # "char" | "bpe"
    vocab_size: int
    tokenizer_file: str
    tokenizer_sha256: str
    dtype: str  # "uint16" | "uint32", little-endian
    splits: dict[str, SplitInfo]
    source: dict = field(default_factory=dict)
    created_by: str = ""

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tokenizer": {
                "kind": self.tokenizer,
                "vocab_size": self.vocab_size,
                "file": self.tokenizer_file,
                "sha256": self.tokenizer_sha256,
            },
            "dtype": self.dtype,
            "byte_order": "little",
            "splits": {
                name: {
                    "file": s.file,
                    "tokens": s.tokens,
                    "source_bytes": s.source_bytes,
                    "bytes_per_token": round(s.bytes_per_token, 6),
                    "sha256": s.sha256,
                    "source_sha256": s.source_sha256,
                }
                for name, s in self.splits.items()
            },
            "source": self.source,
            "created_by": self.created_by,
        }

    @classmethod
    def read(cls, folder: Path) -> TokenManifest:
        """The manifest of a token folder; a missing, damaged or unknown one is a DataError naming it."""
        path = folder / MANIFEST
        kind = path_kind(path)
        if kind == "missing":
            if path_kind(folder) == "missing":
                raise DataError(f"{folder}: no such token folder")
            if path_kind(folder) != "dir":
                raise DataError(f"{folder}: is a file, expected a token folder (astrosnn lm prepare writes one)")
            raise DataError(f"{path}: missing; the token folder is incomplete (prepare it again)")
        try:
            data = json.loads(read_file_bytes(path).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
        return cls.from_dict(data, folder)

    @classmethod
    def from_dict(cls, data, folder: Path) -> TokenManifest:
        path = folder / MANIFEST

        def need(obj, key, typ, where=""):
            if not isinstance(obj, dict) or key not in obj:
                raise DataError(f"{path}: field {where}{key} is missing")
            value = obj[key]
            if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
                raise DataError(f"{path}: field {where}{key} has the wrong type ({type(value).__name__})")
            return value

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"{path}: not an astrosnn token manifest (no \"format\": \"{FORMAT}\")")
        version = need(data, "format_version", int)
        if version != FORMAT_VERSION:
            raise DataError(
                f"{path}: token format version {version} is not known (this astrosnn reads version "
                f"{FORMAT_VERSION}); prepare the corpus again"
            )
        tok = need(data, "tokenizer", dict)
        kind = need(tok, "kind", str, "tokenizer.")
        if kind not in TOKENIZER_KINDS:
            raise DataError(f"{path}: unknown tokenizer kind {kind!r} (known: {', '.join(TOKENIZER_KINDS)})")
        vocab_size = need(tok, "vocab_size", int, "tokenizer.")
        if not 1 <= vocab_size <= MAX_VOCAB:
            raise DataError(f"{path}: tokenizer.vocab_size {vocab_size} is out of range 1..{MAX_VOCAB}")
        dtype = need(data, "dtype", str)
        if dtype not in DTYPES:
            raise DataError(f"{path}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if vocab_size - 1 > np.iinfo(DTYPES[dtype]).max:
            raise DataError(f"{path}: a vocabulary of {vocab_size:,} does not fit {dtype} token files")
        if data.get("byte_order", "little") != "little":
            raise DataError(f"{path}: byte_order {data.get('byte_order')!r} is not supported (only little)")
        splits_raw = need(data, "splits", dict)
        if "train" not in splits_raw:
            raise DataError(f"{path}: no train split")
        splits = {}
        for name, s in splits_raw.items():
            w = f"splits.{name}."
            info = SplitInfo(
                file=need(s, "file", str, w),
                tokens=need(s, "tokens", int, w),
                source_bytes=need(s, "source_bytes", int, w),
                sha256=need(s, "sha256", str, w),
                source_sha256=s.get("source_sha256", "") if isinstance(s, dict) else "",
            )
            if info.tokens < 1 or info.source_bytes < 1:
                raise DataError(f"{path}: split {name} has {info.tokens} tokens and {info.source_bytes} bytes")
            if "/" in info.file or "\\" in info.file or info.file in ("", ".", ".."):
                raise DataError(f"{path}: split {name}: file {info.file!r} must be a plain name in the folder")
            splits[name] = info
        return cls(
            folder=folder,
            tokenizer=kind,
            vocab_size=vocab_size,
            tokenizer_file=need(tok, "file", str, "tokenizer."),
            tokenizer_sha256=need(tok, "sha256", str, "tokenizer."),
            dtype=dtype,
            splits=splits,
            source=data.get("source", {}) if isinstance(data.get("source", {}), dict) else {},
            created_by=str(data.get("created_by", "")),
        )


# --- sources: which bytes of which text make each split --------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Text for one split: bytes start..stop of a file, or an in-memory string. Segments are encoded
    separately (a cut between two segments is a hard token boundary)."""

    path: Path | None = None
    start: int = 0
    stop: int = 0
    text: str | None = None

    @property
    def nbytes(self) -> int:
        return self.stop - self.start if self.text is None else len(self.text.encode("utf-8"))


@dataclass
class _Source:
    splits: dict[str, list[_Segment]]
    info: dict


def _utf8_boundary(path: Path, pos: int, size: int) -> int:
    """The first character boundary at or after byte `pos` of a UTF-8 file."""
    with _open(path) as f:
        f.seek(pos)
        head = f.read(4)
    for i, b in enumerate(head):
        if b & 0xC0 != 0x80:
            return pos + i
    return min(pos + len(head), size)


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise DataAccessError(f"{path}: {oserror_text(e)} (cannot read the file)") from None


def _named_source(name: str, data_dir, download: bool, verify: bool) -> _Source:
    if name == "ptb":
        folder = require_files(registry.PTB, data_dir, download)
        check = verification_on(verify)
        splits = {}
        for split, fname in (("train", "train"), ("validation", "valid"), ("test", "test")):
            remote = registry.PTB.file(f"ptb.{fname}.txt")
            splits[split] = [_Segment(text=read_text(folder / remote.name, remote if check else None))]
        rule = "the official files ptb.train.txt / ptb.valid.txt / ptb.test.txt (raw text)"
        return _Source(splits, {"name": "ptb", "path": str(folder), "split_rule": rule})
    c = load_corpus(name, data_dir=data_dir, download=download, verify=verify)
    splits = {k: [_Segment(text="".join(v))] for k, v in (("train", c.train), ("validation", c.valid), ("test", c.test))}
    rule = "characters [0, 90%) / [90%, 95%) / [95%, 100%) as astrosnn.data.text.char_corpus"
    return _Source(splits, {"name": name, "path": c.source, "split_rule": rule})


def _file_source(source: str, fraction: float) -> _Source:
    path = Path(source).expanduser()
    kind = path_kind(path)
    if kind == "missing":
        raise DataError(f"unknown corpus {source!r}: not one of {', '.join(NAMED_CORPORA)} and no such file or folder")
    if kind == "dir":
        files = [path / e.name for e in list_dir(path) if e.name.endswith(".txt") and path_kind(path / e.name) == "file"]
        if not files:
            raise DataError(f"{path}: the folder has no .txt files")
    elif kind == "file":
        files = [path]
    else:
        raise DataAccessError(f"{path}: not a regular file or folder")
    sizes = [f.stat().st_size for f in files]
    total = sum(sizes)
    if total == 0:
        raise DataError(f"{path}: the text is empty")
    cut = int(total * (1 - fraction))
    train: list[_Segment] = []
    valid: list[_Segment] = []
    pos = 0
    for f, n in zip(files, sizes):
        if n == 0:
            continue
        if pos + n <= cut:
            train.append(_Segment(f, 0, n))
        elif pos >= cut:
            valid.append(_Segment(f, 0, n))
        else:
            c = _utf8_boundary(f, cut - pos, n)
            if c > 0:
                train.append(_Segment(f, 0, c))
            if c < n:
                valid.append(_Segment(f, c, n))
        pos += n
    if not train or not valid:
        raise DataError(f"{path}: {total:,} bytes are too few to split off {fraction:.0%} for validation")
    rule = (
        f"the last {fraction:g} of the bytes (files in name order, cut at a character boundary) = validation"
    )
    info = {"path": str(path), "files": [f.name for f in files], "bytes": total, "split_rule": rule}
    return _Source({"train": train, "validation": valid}, info)


def _resolve_source(source, fraction, data_dir, download, verify) -> _Source:
    name = str(source)
    if name in NAMED_CORPORA:
        if fraction is not None:
            raise AstrosnnError(
                f"validation_fraction applies to a text file or folder; {name} has fixed splits"
            )
        return _named_source(name, data_dir, download, verify)
    if fraction is None:
        fraction = DEFAULT_VALIDATION_FRACTION
    if not 0 < fraction < 1:
        raise AstrosnnError(f"validation fraction must lie strictly between 0 and 1, got {fraction}")
    return _file_source(name, fraction)


def _blocks(seg: _Segment, chunk_bytes: int, on_bytes: Callable[[bytes], None] | None) -> Iterator[str]:
    """The segment's text in blocks of about chunk_bytes, decoded incrementally; invalid UTF-8 is a
    DataError naming the file and byte offset."""
    if seg.text is not None:
        if on_bytes is not None:
            on_bytes(seg.text.encode("utf-8"))
        for i in range(0, len(seg.text), chunk_bytes):
            yield seg.text[i : i + chunk_bytes]
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    pos = seg.start
    with _open(seg.path) as f:
        f.seek(seg.start)
        while pos < seg.stop:
            try:
                raw = f.read(min(chunk_bytes, seg.stop - pos))
            except OSError as e:
                raise DataAccessError(f"{seg.path}: {oserror_text(e)} (cannot read the file)") from None
            if not raw:
                raise DataError(f"{seg.path}: the file shrank while it was read (ends at byte {pos:,})")
            if on_bytes is not None:
                on_bytes(raw)
            pending = len(decoder.getstate()[0])
            final = pos + len(raw) >= seg.stop
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as e:
                at = pos - pending + e.start
                raise DataError(f"{seg.path}: not UTF-8 text (invalid byte at offset {at:,})") from None
            pos += len(raw)
            if text:
                yield text


def _pieces(segs: list[_Segment], chunk_bytes: int, on_bytes=None) -> Iterator[str]:
    """All text of a split as pieces cut at safe positions (see tokenizer.safe_cut), segment by segment."""
    piece = min(chunk_bytes, PIECE_CHARS)
    force = max(4 * chunk_bytes, 1 << 20)
    for seg in segs:
        yield from split_pieces(_blocks(seg, chunk_bytes, on_bytes), piece, force)


# --- preparing a folder --------------------------------------------------------------------------------


def _prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir).expanduser()
    kind = path_kind(out, "output folder")
    if kind in ("file", "other"):
        raise DataAccessError(f"{out}: is a file, expected a folder for the token files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise DataAccessError(f"{out}: {oserror_text(e)} (the output folder is not writable)") from None
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise DataAccessError(f"{path}: {oserror_text(e)} (cannot write the file)") from None


def _check_kind(tokenizer: str) -> str:
    if tokenizer not in TOKENIZER_KINDS:
        raise AstrosnnError(f"unknown tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZER_KINDS)}")
    return tokenizer


def _check_vocab_size(kind: str, vocab_size, tokenizer_path) -> int | None:
    if vocab_size is None:
        return DEFAULT_BPE_VOCAB if kind == "bpe" and tokenizer_path is None else None
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise AstrosnnError(f"vocabulary size must be an integer, got {vocab_size!r}")
    vocab_size = int(vocab_size)
    if vocab_size > MAX_VOCAB:
        raise AstrosnnError(f"vocabulary size {vocab_size:,} is too large (token files hold at most 2**32-1 ids)")
    low = MIN_BPE_VOCAB if kind == "bpe" else 1
    if vocab_size < low:
        why = " (the 256 byte tokens; BPE merges come on top)" if kind == "bpe" else ""
        raise AstrosnnError(f"vocabulary size {vocab_size} is too small for {kind}: at least {low}{why}")
    return vocab_size


def _pick_dtype(vocab_size: int, dtype: str | None) -> str:
    fits16 = vocab_size <= 1 << 16
    if dtype is None:
        return "uint16" if fits16 else "uint32"
    if dtype not in DTYPES:
        raise AstrosnnError(f"token dtype must be uint16 or uint32, got {dtype!r}")
    if dtype == "uint16" and not fits16:
        raise AstrosnnError(f"a vocabulary of {vocab_size:,} is too large for uint16 token files (at most 65,536)")
    return dtype


def _encode_split(tok, segs: list[_Segment], path: Path, dt: np.dtype, chunk_bytes: int, where: str):
    """Stream a split's text through the tokenizer into `path` (via path.tmp); returns
    (tokens, sha256 of the token file, sha256 of the source text, whether it had non-whitespace text)."""
    h_src, h_tok = hashlib.sha256(), hashlib.sha256()
    count, nonempty = 0, False
    limit = np.iinfo(dt).max
    tmp = path.with_name(path.name + ".tmp")

    def write(f, batch: list[str]) -> None:
        nonlocal count
        ids = tok.encode_int32("".join(batch), where=where) if isinstance(tok, CharTokenizer) else bpe_encode(tok, batch)
        if ids.size and int(ids.max()) > limit:
            raise DataError(f"{where}: the tokenizer produced id {int(ids.max())}, beyond {dt.name} token files")
        raw = ids.astype(dt).tobytes()
        h_tok.update(raw)
        f.write(raw)
        count += len(ids)

    try:
        with open(tmp, "wb") as f:
            batch: list[str] = []
            chars = 0
            for piece in _pieces(segs, chunk_bytes, h_src.update):
                nonempty = nonempty or (bool(piece) and not piece.isspace())
                batch.append(piece)
                chars += len(piece)
                if chars >= chunk_bytes:
                    write(f, batch)
                    batch, chars = [], 0
            if batch:
                write(f, batch)
        os.replace(tmp, path)
    except OSError as e:
        raise DataAccessError(f"{path}: {oserror_text(e)} (cannot write the token file)") from None
    return count, h_tok.hexdigest(), h_src.hexdigest(), nonempty


def prepare_corpus(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: str = "char",
    vocab_size: int | None = None,
    validation_fraction: float | None = None,
    data_dir: str | os.PathLike | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    dtype: str | None = None,
    download: bool = True,
    verify: bool = True,
) -> TokenManifest:
    """Encode a corpus into `out_dir` (token files + tokenizer + manifest.json, the manifest last).

    source: "default" | "tinyshakespeare" (90/5/5 character splits as load_corpus) | "ptb" (its three
        files) | a UTF-8 text file or a folder of .txt files (name order), streamed in chunks of
        `chunk_bytes`; the last `validation_fraction` (default 0.1) of the bytes is the validation split.
    tokenizer: "char" (vocabulary = sorted characters of all splits, the ids of load_corpus; `vocab_size`,
        if given, is an upper bound) or "bpe" (byte-level BPE trained on the train split, `vocab_size`
        default 4096, at least 256; a small corpus may end with fewer tokens, the manifest has the real
        count). `tokenizer_path` reuses a tokenizer.json (bpe) or vocab.json (char) instead of building one.
    dtype: None picks uint16 for vocabularies up to 65,536 and uint32 above; "uint16" with a larger
        vocabulary is an error.
    Text is cut for encoding only before a space or newline that follows a non-space, so the ids do not
    depend on `chunk_bytes` (a run of over max(4*chunk_bytes, 1 MiB) characters without such a place is
    the exception: it is cut where it stands).
    """
    import astrosnn

    t0 = time.perf_counter()
    kind = _check_kind(tokenizer)
    vocab_size = _check_vocab_size(kind, vocab_size, tokenizer_path)
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise AstrosnnError(f"chunk size must be a positive number of bytes, got {chunk_bytes!r}")
    if dtype is not None and dtype not in DTYPES:
        raise AstrosnnError(f"token dtype must be uint16 or uint32, got {dtype!r}")
    src = _resolve_source(source, validation_fraction, data_dir, download, verify)
    out = _prepare_out_dir(out_dir)

    # tokenizer
    if tokenizer_path is not None:
        tpath = Path(tokenizer_path).expanduser()
        tok = CharTokenizer.from_file(tpath) if kind == "char" else load_bpe(tpath)
    elif kind == "char":
        tok = collect_chars(p for segs in src.splits.values() for p in _pieces(segs, chunk_bytes))
    else:
        tok = train_bpe(_pieces(src.splits["train"], chunk_bytes), vocab_size)
    actual_vocab = tok.vocab_size if kind == "char" else tok.get_vocab_size()
    if kind == "char" and vocab_size is not None and actual_vocab > vocab_size:
        raise AstrosnnError(
            f"{src.info.get('path', source)}: {actual_vocab} distinct characters, more than the vocabulary size {vocab_size}"
        )
    if actual_vocab > MAX_VOCAB:
        raise AstrosnnError(f"the tokenizer has {actual_vocab:,} tokens, more than token files can hold")
    dt_name = _pick_dtype(actual_vocab, dtype)
    dt = DTYPES[dt_name]

    # start over: no manifest while the files change
    stale = [MANIFEST, *TOKENIZER_FILES.values(), *(f"{s}.bin" for s in SPLITS)]
    for name in stale:
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as e:
            raise DataAccessError(f"{out / name}: {oserror_text(e)} (cannot replace it)") from None

    tok_file = TOKENIZER_FILES[kind]
    tok_bytes = tok.to_json() if kind == "char" else tok.to_str().encode("utf-8")
    _write_atomic(out / tok_file, tok_bytes)

    splits: dict[str, SplitInfo] = {}
    where = str(src.info.get("path", source))
    nonempty = False
    for name, segs in src.splits.items():
        path = out / f"{name}.bin"
        count, tok_sha, src_sha, has_text = _encode_split(tok, segs, path, dt, chunk_bytes, f"{where} ({name})")
        nonempty = nonempty or has_text
        if count == 0:
            raise DataError(f"{where}: the {name} split is empty (no text to encode)")
        splits[name] = SplitInfo(path.name, count, sum(s.nbytes for s in segs), tok_sha, src_sha)
    if not nonempty:
        raise DataError(f"{where}: the text is empty (only whitespace)")

    manifest = TokenManifest(
        folder=out,
        tokenizer=kind,
        vocab_size=actual_vocab,
        tokenizer_file=tok_file,
        tokenizer_sha256=hashlib.sha256(tok_bytes).hexdigest(),
        dtype=dt_name,
        splits=splits,
        source={**src.info, "chunk_bytes": chunk_bytes, "seconds": round(time.perf_counter() - t0, 3)},
        created_by=f"astrosnn {astrosnn.__version__}",
    )
    _write_atomic(out / MANIFEST, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode("utf-8"))
    return manifest


# --- reading a folder ----------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with _open(path) as f:
        try:
            while block := f.read(_HASH_BLOCK):
                h.update(block)
        except OSError as e:
            raise DataAccessError(f"{path}: {oserror_text(e)} (cannot read the file)") from None
    return h.hexdigest()


def _check_hash(path: Path, expected: str) -> None:
    actual = _sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 checksum mismatch (expected {expected} from {MANIFEST}, got {actual}): the file "
            f"is damaged or was not written with this manifest; prepare the corpus again, or {OPT_OUT}"
        )


class TokenCorpus:
    """A prepared token folder: splits as read-only np.memmap arrays, and the tokenizer that made them."""

    def __init__(self, manifest: TokenManifest, verify: bool = True):
        self.manifest = manifest
        self.folder = manifest.folder
        self.kind = manifest.tokenizer
        self.dtype = DTYPES[manifest.dtype]
        check = verification_on(verify)
        tpath = self.folder / manifest.tokenizer_file
        if path_kind(tpath) != "file":
            raise DataError(f"{tpath}: missing; the token folder is incomplete")
        if check:
            _check_hash(tpath, manifest.tokenizer_sha256)
        if self.kind == "char":
            self._char = CharTokenizer.from_file(tpath)
            self.tokenizer = None
            n = self._char.vocab_size
        else:
            self._char = None
            self.tokenizer = load_bpe(tpath)
            n = self.tokenizer.get_vocab_size()
        if n != manifest.vocab_size:
            raise DataError(f"{tpath}: {n:,} tokens, but {MANIFEST} says the vocabulary has {manifest.vocab_size:,}")
        self._splits: dict[str, np.memmap] = {}
        for name, info in manifest.splits.items():
            path = self.folder / info.file
            kind = path_kind(path)
            if kind != "file":
                raise DataError(f"{path}: {'missing' if kind == 'missing' else 'not a regular file'}; {MANIFEST} lists it for the {name} split")
            size = path.stat().st_size
            want = info.tokens * self.dtype.itemsize
            if size != want:
                raise DataError(
                    f"{path}: {size:,} bytes, but {MANIFEST} says {info.tokens:,} {manifest.dtype} tokens "
                    f"= {want:,} bytes; the file is cut short or not from this preparation"
                )
            if check:
                _check_hash(path, info.sha256)
            try:
                self._splits[name] = np.memmap(path, dtype=self.dtype, mode="r", shape=(info.tokens,))
            except OSError as e:
                raise DataAccessError(f"{path}: {oserror_text(e)} (cannot map the file)") from None

    @property
    def vocab_size(self) -> int:
        return self.manifest.vocab_size

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    @property
    def vocab(self) -> tuple[str, ...] | None:
        """The characters (char tokenizer); None for BPE."""
        return self._char.vocab if self._char is not None else None

    def split(self, name: str) -> np.memmap:
        if name not in self._splits:
            raise AstrosnnError(f"{self.folder}: no split {name!r} (has {', '.join(self._splits)})")
        return self._splits[name]

    def bytes_per_token(self, name: str = "validation") -> float:
        self.split(name)
        return self.manifest.splits[name].bytes_per_token

    def bits_per_byte(self, mean_nll: float, split: str = "validation") -> float:
        return bits_per_byte(mean_nll, self.bytes_per_token(split))

    @cached_property
    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes each token id stands for (int64, length vocab_size): exact bytes of any token subset."""
        return self._char.byte_lengths() if self._char is not None else bpe_byte_lengths(self.tokenizer)

    def encode(self, text: str) -> np.ndarray:
        if self._char is not None:
            return self._char.encode(text)
        return bpe_encode(self.tokenizer, [text])

    def decode(self, ids) -> str:
        if self._char is not None:
            return self._char.decode(ids)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise AstrosnnError(f"token ids must lie in 0..{self.vocab_size - 1} for {self.folder}")
        return self.tokenizer.decode(ids.tolist(), skip_special_tokens=False)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v.tokens:,}" for k, v in self.manifest.splits.items())
        return f"TokenCorpus({str(self.folder)!r}, {self.kind}, vocab={self.vocab_size:,}, {self.manifest.dtype}, {counts})"


def open_token_corpus(folder: str | os.PathLike, verify: bool = True) -> TokenCorpus:
    """A prepared token folder, checked against its manifest: file sizes always, sha256 of the token and
    tokenizer files unless `verify=False` or $ASTROSNN_SKIP_CHECKSUMS=1."""
    return TokenCorpus(TokenManifest.read(Path(folder).expanduser()), verify=verify)
