"""Token folders: prepare_corpus / open_token_corpus (char and byte-level BPE), manifests, bad input."""

import json
import math
import os
import sys

import numpy as np
import pytest

from astrosnn.data.text import load_corpus
from astrosnn.data.tokens import FORMAT_VERSION, open_token_corpus, prepare_corpus
from astrosnn.errors import AstrosnnError, ChecksumError, DataError

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.  It's   the  café — naïve 日本語 text\twith tabs\r\nand CRLF.\n"
) * 40


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return path


def _all_text(c):
    return "".join(c.decode(np.asarray(c.split(s))) for s in c.splits)


def test_char_round_trip_and_manifest(text_file, tmp_path):
    out = tmp_path / "tok"
    m = prepare_corpus(text_file, out, tokenizer="char", validation_fraction=0.25, chunk_bytes=100)
    raw = text_file.read_bytes()
    data = json.loads((out / "manifest.json").read_text())
    assert data["format"] == "astrosnn-tokens" and data["format_version"] == FORMAT_VERSION
    assert data["tokenizer"]["kind"] == "char" and data["tokenizer"]["file"] == "vocab.json"
    assert data["dtype"] == "uint16" and set(data["splits"]) == {"train", "validation"}
    assert "0.25" in data["source"]["split_rule"]
    sp = data["splits"]
    assert sp["train"]["source_bytes"] + sp["validation"]["source_bytes"] == len(raw)
    assert abs(sp["validation"]["source_bytes"] - len(raw) * 0.25) < 4  # cut at a character boundary
    assert sp["train"]["tokens"] + sp["validation"]["tokens"] == len(TEXT)
    assert (out / "train.bin").stat().st_size == 2 * sp["train"]["tokens"]
    assert not list(out.glob("*.tmp"))
    c = open_token_corpus(out)
    assert c.vocab == tuple(sorted(set(TEXT))) and c.vocab_size == m.vocab_size == len(c.vocab)
    assert c.split("train").dtype == np.dtype("<u2") and not c.split("train").flags.writeable
    assert _all_text(c) == TEXT
    assert c.decode(c.encode("café")) == "café"
    assert c.bytes_per_token("train") > 1  # multi-byte characters
    with pytest.raises(AstrosnnError, match=r"1 character\(s\) not in the vocabulary: 'Z'"):
        c.encode("Zebra")
    with pytest.raises(AstrosnnError, match="no split 'test'"):
        c.split("test")


def test_bpe_round_trip_byte_lengths_and_chunk_invariance(text_file, tmp_path):
    a = prepare_corpus(text_file, tmp_path / "a", tokenizer="bpe", vocab_size=300, chunk_bytes=1 << 20)
    b = prepare_corpus(text_file, tmp_path / "b", tokenizer="bpe", vocab_size=300, chunk_bytes=7)
    assert a.tokenizer_sha256 == b.tokenizer_sha256  # same training data after re-cutting
    assert {k: v.sha256 for k, v in a.splits.items()} == {k: v.sha256 for k, v in b.splits.items()}
    c = open_token_corpus(tmp_path / "b")
    assert c.vocab_size == 300 and c.tokenizer.get_vocab_size() == 300 and c.vocab is None
    assert _all_text(c) == TEXT
    weird = "  leading spaces, émoji 🙂 and\n\n\ttrailing  \n"
    assert c.decode(c.encode(weird)) == weird
    for s in c.splits:  # exact bytes of every token: sums to the source bytes
        assert c.byte_lengths[np.asarray(c.split(s))].sum() == c.manifest.splits[s].source_bytes
    # reuse the tokenizer file
    d = prepare_corpus(text_file, tmp_path / "d", tokenizer="bpe", tokenizer_path=tmp_path / "a" / "tokenizer.json")
    assert d.splits["train"].sha256 == a.splits["train"].sha256


def test_folder_of_txt_files(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    parts = ["alpha beta\n" * 50, "gamma delta\n" * 50, "epsilon\n" * 50]
    for i, p in enumerate(parts):
        (src / f"{i:02d}.txt").write_text(p)
    (src / "notes.md").write_text("ignored")
    m = prepare_corpus(src, tmp_path / "tok", validation_fraction=0.3)
    assert m.source["files"] == ["00.txt", "01.txt", "02.txt"]
    c = open_token_corpus(tmp_path / "tok")
    assert _all_text(c) == "".join(parts) and "ignored" not in _all_text(c)


def test_uint32_for_large_vocabulary(tmp_path):
    chars = [chr(cp) for cp in range(0x100, 0x100 + 70_000) if not 0xD800 <= cp < 0xE000]
    path = tmp_path / "wide.txt"
    path.write_text("".join(chars) + "".join(chars[-1000:]), encoding="utf-8")
    m = prepare_corpus(path, tmp_path / "tok", validation_fraction=0.01)
    assert m.vocab_size == len(chars) and m.dtype == "uint32"
    c = open_token_corpus(tmp_path / "tok")
    assert c.split("train").dtype == np.dtype("<u4") and c.split("train").max() >= 1 << 16
    with pytest.raises(AstrosnnError, match="too large for uint16 token files"):
        prepare_corpus(path, tmp_path / "tok16", validation_fraction=0.01, dtype="uint16")


@pytest.fixture(scope="module")
def shakespeare(shared_data):
    return load_corpus("tinyshakespeare", data_dir=shared_data, download=False)


def test_tinyshakespeare_char_ids_match_load_corpus(shared_data, shakespeare, tmp_path):
    m = prepare_corpus("tinyshakespeare", tmp_path / "tok", data_dir=shared_data, download=False)
    c = open_token_corpus(tmp_path / "tok")
    assert c.vocab == shakespeare.vocab and m.vocab_size == 65
    for split, tokens in (("train", shakespeare.train), ("validation", shakespeare.valid), ("test", shakespeare.test)):
        assert np.array_equal(c.split(split), shakespeare.encode(tokens))
        assert c.bytes_per_token(split) == 1.0  # pure ASCII
    # bits per byte on pure ASCII text is bits per character
    assert c.bits_per_byte(1.5, "validation") == pytest.approx(1.5 / math.log(2))


def test_tinyshakespeare_bpe_512(shared_data, shakespeare, tmp_path):
    m = prepare_corpus("tinyshakespeare", tmp_path / "tok", tokenizer="bpe", vocab_size=512, data_dir=shared_data)
    c = open_token_corpus(tmp_path / "tok")
    assert m.vocab_size == 512 and m.dtype == "uint16" and set(c.splits) == {"train", "validation", "test"}
    assert c.decode(np.asarray(c.split("validation"))) == "".join(shakespeare.valid)
    assert 1.5 < c.bytes_per_token("validation") < 2.5
    n = m.splits["validation"]
    # bpb = total nats / ln 2 / total bytes, whatever the tokenizer
    assert c.bits_per_byte(2.0, "validation") == pytest.approx(2.0 * n.tokens / math.log(2) / n.source_bytes)


def test_ptb_keeps_its_three_files(shared_data, tmp_path):
    m = prepare_corpus("ptb", tmp_path / "tok", data_dir=shared_data, download=False)
    assert {k: v.source_bytes for k, v in m.splits.items()} == {
        "train": 5_101_618,
        "validation": 399_782,
        "test": 449_945,
    }
    assert m.splits["train"].tokens == 5_101_618  # ASCII: one character per byte


# --- bad input ------------------------------------------------------------------------------------------


@pytest.fixture
def prepared(text_file, tmp_path):
    out = tmp_path / "tok"
    prepare_corpus(text_file, out)
    return out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tokenizer": "wordpiece"}, "unknown tokenizer 'wordpiece': expected one of char, bpe"),
        ({"tokenizer": "bpe", "vocab_size": 100}, "vocabulary size 100 is too small for bpe: at least 256"),
        ({"tokenizer": "bpe", "vocab_size": 2**32}, "vocabulary size 4,294,967,296 is too large"),
        ({"tokenizer": "char", "vocab_size": 5}, r"distinct characters, more than the vocabulary size 5"),
        ({"validation_fraction": 1.5}, "validation fraction must lie strictly between 0 and 1"),
        ({"chunk_bytes": 0}, "chunk size must be a positive number of bytes"),
        ({"dtype": "int8"}, "token dtype must be uint16 or uint32"),
    ],
)
def test_bad_options(text_file, tmp_path, kwargs, message):
    with pytest.raises(AstrosnnError, match=message) as e:
        prepare_corpus(text_file, tmp_path / "out", **kwargs)
    assert "\n" not in str(e.value)


def test_bad_sources(tmp_path, shared_data):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n  \t\n" * 100)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"hello world " * 10 + b"caf\xe9 " + b"more text " * 10)
    nofiles = tmp_path / "nofiles"
    nofiles.mkdir()
    (nofiles / "a.md").write_text("text")
    out = tmp_path / "out"
    cases = [
        (empty, "empty.txt: the text is empty"),
        (blank, r"blank.txt: the text is empty \(only whitespace\)"),
        (bad, r"latin1.txt: not UTF-8 text \(invalid byte at offset 123\)"),
        (tmp_path / "nope.txt", "unknown corpus .*nope.txt.*no such file or folder"),
        (nofiles, "nofiles: the folder has no .txt files"),
    ]
    for src, message in cases:
        with pytest.raises(DataError, match=message):
            prepare_corpus(src, out, chunk_bytes=16)
    with pytest.raises(AstrosnnError, match="tinyshakespeare has fixed splits"):
        prepare_corpus("tinyshakespeare", out, data_dir=shared_data, validation_fraction=0.2)


def test_bad_out_dir_checked_before_work(text_file, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match="afile: is a file, expected a folder"):
        prepare_corpus(text_file, afile)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(DataError, match="ro: permission denied .*not writable"):
                prepare_corpus(text_file, ro)
        finally:
            ro.chmod(0o700)


def test_damaged_token_folder(prepared, monkeypatch):
    train = prepared / "train.bin"
    raw = bytearray(train.read_bytes())
    raw[10] ^= 1
    train.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"train.bin: sha256 checksum mismatch \(expected [0-9a-f]{64} from manifest.json"):
        open_token_corpus(prepared)
    open_token_corpus(prepared, verify=False)
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", "1")
    open_token_corpus(prepared)
    train.write_bytes(bytes(raw[:-2]))
    with pytest.raises(DataError, match=r"train.bin: [\d,]+ bytes, but manifest.json says [\d,]+ uint16 tokens"):
        open_token_corpus(prepared)


def _edit_manifest(folder, edit):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_bad_manifests(prepared):
    cases = [
        (lambda d: d.update(format_version=99), "token format version 99 is not known"),
        (lambda d: d.update(format="other"), "not an astrosnn token manifest"),
        (lambda d: d["splits"]["train"].pop("tokens"), "field splits.train.tokens is missing"),
        (lambda d: d.update(dtype="float32"), "dtype 'float32' is not one of uint16, uint32"),
        (lambda d: d["tokenizer"].update(kind="sentencepiece"), "unknown tokenizer kind 'sentencepiece'"),
        (lambda d: d["tokenizer"].update(vocab_size=70_000), "a vocabulary of 70,000 does not fit uint16"),
        (lambda d: d["tokenizer"].update(vocab_size=3), "vocab.json: [\\d,]+ tokens, but manifest.json says the vocabulary has 3"),
    ]
    original = (prepared / "manifest.json").read_text()
    for edit, message in cases:
        (prepared / "manifest.json").write_text(original)
        _edit_manifest(prepared, edit)
        with pytest.raises(DataError, match=message) as e:
            open_token_corpus(prepared)
        assert "\n" not in str(e.value)
    (prepared / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest.json: not valid JSON"):
        open_token_corpus(prepared)
    (prepared / "manifest.json").unlink()
    with pytest.raises(DataError, match="manifest.json: missing; the token folder is incomplete"):
        open_token_corpus(prepared)
    with pytest.raises(DataError, match="no such token folder"):
        open_token_corpus(prepared / "nothing")


def test_char_works_without_tokenizers(text_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    prepare_corpus(text_file, tmp_path / "tok")
    assert _all_text(open_token_corpus(tmp_path / "tok")) == TEXT
    with pytest.raises(AstrosnnError, match=r"needs the Hugging Face 'tokenizers' package.*pip install 'astrosnn\[lm\]'"):
        prepare_corpus(text_file, tmp_path / "bpe", tokenizer="bpe", vocab_size=300)


def test_data_does_not_import_upper_layers():
    import ast
    from pathlib import Path

    import astrosnn.data

    for path in Path(astrosnn.data.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for n in names:
                assert not n.startswith(("astrosnn.lm", "astrosnn.nalsm", "astrosnn.commands")), f"{path.name} imports {n}"
