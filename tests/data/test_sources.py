import hashlib
import shutil
from pathlib import Path

import pooch
import pytest

from astrosnn.data import registry, sources
from astrosnn.data.images import load_images
from astrosnn.data.nmnist import load_nmnist
from astrosnn.data.registry import RemoteFile
from astrosnn.data.text import load_corpus
from astrosnn.errors import DataError


def test_resolve_order_option_then_env_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ASTROSNN_DATA", str(tmp_path / "env"))
    assert sources.resolve_data_dir(tmp_path / "opt") == tmp_path / "opt"
    assert sources.data_dir_origin(tmp_path / "opt") == "--data-dir"
    assert sources.resolve_data_dir() == tmp_path / "env"
    assert sources.data_dir_origin() == "$ASTROSNN_DATA"
    monkeypatch.delenv("ASTROSNN_DATA")
    assert sources.resolve_data_dir() == Path(pooch.os_cache("astrosnn"))
    assert sources.data_dir_origin() == "user cache"


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        sources.resolve_data_dir(tmp_path / "f")


def test_env_var_is_used_by_loaders(monkeypatch, shared_data):
    monkeypatch.setenv("ASTROSNN_DATA", str(shared_data))
    assert load_images("mnist", "test", limit=2).source == str(shared_data / "mnist")


def test_missing_without_download_says_what_to_put_where(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "fetch_file", lambda remote, folder: calls.append(remote))
    with pytest.raises(DataError) as e:
        load_images("mnist", "test", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert calls == []
    assert "\n" not in msg
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in msg
    assert f"in {tmp_path / 'mnist'}" in msg and "--data-dir" in msg and "$ASTROSNN_DATA" in msg
    assert "download=False" in msg


def test_failed_download_gives_one_message(tmp_path, monkeypatch):
    calls = []

    def offline(remote, folder):
        calls.append(remote.name)
        raise ConnectionError("Failed to resolve 'raw.githubusercontent.com'")

    monkeypatch.setattr(sources, "fetch_file", offline)
    with pytest.raises(DataError) as e:
        load_corpus("ptb", data_dir=tmp_path)
    msg = str(e.value)
    assert calls == ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
    assert msg.startswith("ptb: missing ptb.train.txt, ptb.valid.txt, ptb.test.txt in ")
    assert "ConnectionError: Failed to resolve" in msg and "--data-dir" in msg
    assert not (tmp_path / "ptb").exists() or not any((tmp_path / "ptb").iterdir())


def test_nmnist_missing_message_names_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "fetch_file", lambda r, f: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataError, match=r"nmnist: missing Test/<label>/<NNNNN>.bin \(unpacked Test.zip\) in .*nmnist"):
        load_nmnist("test", data_dir=tmp_path)


def test_successful_fetch_is_used(tmp_path, monkeypatch, shared_data):
    def fake_fetch(remote, folder):  # stands in for the network: copies the real file
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "tinyshakespeare" / remote.name, folder / remote.name)

    monkeypatch.setattr(sources, "fetch_file", fake_fetch)
    c = load_corpus("tinyshakespeare", data_dir=tmp_path)
    assert len(c.vocab) == 65 and (tmp_path / "tinyshakespeare" / "input.txt").is_file()


class _FakeDownloader:
    """Writes fixed bytes where pooch asks, so pooch's own hash check runs without a network."""

    def __init__(self, payload):
        self.payload = payload

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        Path(output_file).write_bytes(self.payload)


def test_pooch_verifies_before_moving_in(tmp_path, monkeypatch):
    payload = b"verified content\n"
    good = RemoteFile("a.txt", "https://example.invalid/a.txt", "md5:" + hashlib.md5(payload).hexdigest())
    bad = RemoteFile("b.txt", "https://example.invalid/b.txt", "md5:" + "0" * 32)
    monkeypatch.setattr(pooch.core, "choose_downloader", lambda url, progressbar=False: _FakeDownloader(payload))
    sources.fetch_file(good, tmp_path)
    assert (tmp_path / "a.txt").read_bytes() == payload
    with pytest.raises(ValueError, match="hash"):
        sources.fetch_file(bad, tmp_path)
    assert not (tmp_path / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_registry_hashes_match_shared_files(shared_data):
    for spec in (registry.MNIST, registry.FASHION_MNIST, registry.PTB, registry.TINYSHAKESPEARE):
        for f in spec.files:
            path = shared_data / spec.folder / f.name
            alg, expected = f.known_hash.split(":")
            assert path.stat().st_size == f.size
            assert hashlib.new(alg, path.read_bytes()).hexdigest() == expected, path


def test_archive_is_verified_then_unpacked(tmp_path, monkeypatch):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Test/3/00001.bin", bytes([1, 2, 0x80, 0, 7]))
    payload = buf.getvalue()
    remote = RemoteFile("Test.zip", "https://example.invalid/t", "md5:" + hashlib.md5(payload).hexdigest(), unpacks_to="Test")
    monkeypatch.setattr(pooch.core, "choose_downloader", lambda url, progressbar=False: _FakeDownloader(payload))
    folder = tmp_path / "nmnist"
    assert not sources.is_present(remote, folder)
    sources.fetch_file(remote, folder)
    assert sources.is_present(remote, folder)
    es = load_nmnist("test", data_dir=tmp_path, download=False)
    assert es.files == ("Test/3/00001.bin",) and es.events[0].tolist() == [(1, 2, 1, 7)]
