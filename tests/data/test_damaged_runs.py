"""A run on damaged inputs stops with one line naming the file and writes no result file."""

import gzip
import hashlib
import shutil

import pytest

from astrosnn.cli import main


def _run(capsys, *args):
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.err


def test_nalsm_train_on_relabelled_mnist_writes_nothing(shared_data, tmp_path, capsys):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(shared_data / "mnist" / name, folder / name)
    labels = bytearray(gzip.decompress((shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8:1008] = bytes((b + 1) % 10 for b in labels[8:1008])  # a valid file with 1,000 wrong labels
    bad = folder / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(labels)))
    out = tmp_path / "run"
    rc, err = _run(capsys, "nalsm", "train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                   "--no-download", "--limit", "5", "--out", str(out))
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"astrosnn: error: {bad}: md5 checksum mismatch (expected d53e105ee54ea40749a09fcbcd1e9432")
    assert "ASTROSNN_SKIP_CHECKSUMS=1" in err
    assert not out.exists()


def test_nalsm_train_on_nmnist_with_dropped_event_writes_nothing(tmp_path, capsys):
    events = b"".join(bytes([i % 34, 5, 0x80, 0, i]) for i in range(10))
    root = tmp_path / "data" / "nmnist"
    rows = ["placed_path\tmd5"]
    for rel in ("Train/3/00001.bin", "Train/4/00002.bin", "Test/3/00001.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(events)
        rows.append(f"{rel}\t{hashlib.md5(events).hexdigest()}")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    bad = root / "Test/3/00001.bin"
    bad.write_bytes(events[5:])
    out = tmp_path / "run"
    rc, err = _run(capsys, "nalsm", "train", "--dataset", "nmnist", "--data-dir", str(tmp_path / "data"),
                   "--no-download", "--limit", "2", "--out", str(out))
    assert rc == 2 and err.count("\n") <= 2  # the subset note, then the error
    assert err.splitlines()[-1].startswith(f"astrosnn: error: {bad}: md5 checksum mismatch")
    assert not out.exists()


@pytest.mark.parametrize("value", ["1", "true"])
def test_env_opt_out_is_read_per_call(value, monkeypatch):
    from astrosnn.data.verify import verification_on

    assert verification_on() and not verification_on(False)
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", value)
    assert not verification_on()
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", "0")
    assert verification_on()
