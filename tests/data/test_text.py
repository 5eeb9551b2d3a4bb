import shutil

import numpy as np
import pytest

from astrosnn.data.text import EOS, load_corpus
from astrosnn.errors import AstrosnnError, ChecksumError, DataError


@pytest.fixture(scope="module")
def ptb(shared_data):
    return load_corpus("ptb", data_dir=shared_data, download=False)


def test_ptb_token_and_vocab_counts(ptb, shared_data):
    assert ptb.level == "word"
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert len(ptb.vocab) == 10_000 and EOS in ptb.vocab and "<unk>" in ptb.vocab
    assert ptb.train.count(EOS) == 42_068 and ptb.valid.count(EOS) == 3_370 and ptb.test.count(EOS) == 3_761
    assert ptb.train[:3] == ["aer", "banknote", "berlitz"]
    assert ptb.source == str(shared_data / "ptb")


def test_ptb_encode_decode_round_trip(ptb):
    ids = ptb.encode(ptb.valid[:50])
    assert ids.dtype == np.int64 and ids.max() < 10_000
    assert ptb.decode(ids) == " ".join(ptb.valid[:50])
    with pytest.raises(AstrosnnError, match="not in the ptb vocabulary: 'zzyzx'"):
        ptb.encode(["the", "zzyzx"])


def test_tinyshakespeare_65_characters(shared_data):
    c = load_corpus("tinyshakespeare", data_dir=shared_data, download=False)
    assert c.level == "char" and len(c.vocab) == 65
    n = len(c.train) + len(c.valid) + len(c.test)
    assert n == 1_115_394
    assert len(c.train) == int(n * 0.9) and len(c.valid) == int(n * 0.95) - int(n * 0.9)
    assert "".join(c.train[:14]) == "First Citizen:"
    ids = c.encode(c.test[:200])
    assert c.decode(ids) == "".join(c.test[:200])


def test_default_corpus_is_embedded(tmp_path):
    c = load_corpus("default", data_dir=tmp_path / "nowhere", download=False)
    assert c.level == "char" and len(c.train) > 300_000
    assert "pydoc_data" in c.source
    assert c.vocab == tuple(sorted(set(c.train + c.valid + c.test)))
    assert "the" in "".join(c.train[:5000])


def test_local_text_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("abcabc\u00e9" * 20, encoding="utf-8")
    c = load_corpus(str(path))
    assert c.name == "story" and c.vocab == ("a", "b", "c", "\u00e9")
    assert len(c.train) == 126 and len(c.valid) == 7 and len(c.test) == 7
    assert c.decode(c.encode(list("cab"))) == "cab"


def test_empty_text_names_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text(" \n\n")
    with pytest.raises(DataError, match="empty.txt: the text file is empty"):
        load_corpus(str(path))


def test_non_utf8_text_names_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 ol\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt: not UTF-8 text \\(invalid byte 0xe9 at offset 3\\)"):
        load_corpus(str(path))


def test_unknown_corpus_and_folder(tmp_path):
    with pytest.raises(DataError, match="unknown corpus 'wikitext-2'"):
        load_corpus("wikitext-2")
    with pytest.raises(DataError, match="is a folder"):
        load_corpus(str(tmp_path))


def test_corrupt_ptb_copies_structure_checked_without_verify(shared_data, tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):  # copyfile: writable copies
        shutil.copyfile(shared_data / "ptb" / name, folder / name)
    (folder / "ptb.valid.txt").write_text(" the qwertyuiop \n")
    with pytest.raises(DataError, match="ptb.valid.txt: 1 word\\(s\\) not in the training vocabulary"):
        load_corpus("ptb", data_dir=tmp_path, download=False, verify=False)
    shutil.copyfile(shared_data / "ptb" / "ptb.valid.txt", folder / "ptb.valid.txt")
    (folder / "ptb.test.txt").write_bytes(b"")
    with pytest.raises(DataError, match="ptb.test.txt: the text file is empty"):
        load_corpus("ptb", data_dir=tmp_path, download=False, verify=False)
    (folder / "ptb.valid.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match="ptb.valid.txt: not UTF-8"):
        load_corpus("ptb", data_dir=tmp_path, download=False, verify=False)


def test_ptb_and_shakespeare_checksums_enforced(shared_data, tmp_path, monkeypatch):
    (tmp_path / "ptb").mkdir()
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        shutil.copyfile(shared_data / "ptb" / name, tmp_path / "ptb" / name)
    path = tmp_path / "ptb" / "ptb.test.txt"
    path.write_bytes(path.read_bytes().replace(b" the ", b" a ", 1))  # still plausible PTB
    with pytest.raises(ChecksumError, match="ptb.test.txt: md5 checksum mismatch \\(expected 8b80168b89c18661a38ef683c0dc3721, got"):
        load_corpus("ptb", data_dir=tmp_path, download=False)
    assert len(load_corpus("ptb", data_dir=tmp_path, verify=False).vocab) == 10_000
    (tmp_path / "tinyshakespeare").mkdir()
    text = (shared_data / "tinyshakespeare" / "input.txt").read_bytes()
    (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(text[:-1000])
    with pytest.raises(ChecksumError, match="input.txt: sha256 checksum mismatch .*1,114,394 bytes, expected 1,115,394"):
        load_corpus("tinyshakespeare", data_dir=tmp_path, download=False)
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", "1")
    assert load_corpus("tinyshakespeare", data_dir=tmp_path).name == "tinyshakespeare"
