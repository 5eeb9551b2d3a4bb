import csv
import hashlib
import logging
import os
import shutil
import warnings

import numpy as np
import pytest

from astrosnn.data import nmnist as nmnist_module
from astrosnn.data.nmnist import EVENT_DTYPE, load_nmnist
from astrosnn.errors import AstrosnnError, ChecksumError, DataAccessError, DataError

TRAIN_COUNTS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
TEST_COUNTS = [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]


@pytest.fixture(scope="module")
def nmnist(shared_data):
    train = load_nmnist("train", data_dir=shared_data, download=False)
    val = load_nmnist("validation", data_dir=shared_data, download=False)
    return {"train": train, "validation": val, "test": load_nmnist("test", data_dir=shared_data, download=False)}


@pytest.fixture(scope="module")
def manifest(shared_data):
    with (shared_data / "nmnist" / "MANIFEST.tsv").open(newline="") as f:
        return {row["placed_path"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_subset_split_sizes_and_per_class_counts(nmnist):
    assert [len(nmnist[s].events) for s in ("train", "validation", "test")] == [833, 167, 100]
    train_all = np.concatenate([nmnist["train"].labels, nmnist["validation"].labels])
    assert np.bincount(train_all, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(nmnist["test"].labels, minlength=10).tolist() == TEST_COUNTS
    assert nmnist["train"].files[:2] == ("Train/5/00001.bin", "Train/0/00002.bin")
    assert nmnist["validation"].files[0] == "Train/1/00834.bin"
    assert "validation = the last 167" in nmnist["train"].note and nmnist["test"].note == ""
    assert not set(nmnist["train"].files) & set(nmnist["validation"].files)


def test_events_match_manifest(nmnist, manifest):
    seen = 0
    for es in nmnist.values():
        assert es.labels.dtype == np.int64 and len(es.files) == len(es.events) == len(es.labels)
        for rel, ev, label in zip(es.files, es.events, es.labels):
            row = manifest[rel]
            assert ev.dtype == EVENT_DTYPE
            assert len(ev) == int(row["events"]) and label == int(row["label"])
            seen += 1
    assert seen == len(manifest) == 1100


def test_event_fields_in_range(nmnist):
    events = np.concatenate([e for es in nmnist.values() for e in es.events])
    assert events["x"].min() == 0 and events["x"].max() == 33
    assert events["y"].min() == 0 and events["y"].max() == 33
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert 0.4 < events["p"].mean() < 0.6
    ends = np.array([e["t"].max() for es in nmnist.values() for e in es.events])
    assert ends.min() == pytest.approx(296_800, abs=100) and ends.max() == pytest.approx(336_000, abs=100)
    assert all(np.all(np.diff(e["t"]) >= 0) for e in nmnist["test"].events)


def test_limit_and_bad_split(shared_data):
    es = load_nmnist("test", data_dir=shared_data, limit=3)
    assert es.files == ("Test/7/00001.bin", "Test/2/00002.bin", "Test/1/00003.bin")
    with pytest.raises(AstrosnnError, match="unknown split"):
        load_nmnist("val", data_dir=shared_data)


# --- hand-made files --------------------------------------------------------------------------

def _encode(x, y, p, t):
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


def _write(root, rel, data):
    path = root / "nmnist" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_decodes_bit_fields_and_overflow_events(tmp_path):
    data = _encode(3, 33, 1, 0x7ABCDE) + _encode(0, 240, 0, 0) + _encode(33, 0, 0, 5)
    _write(tmp_path, "Test/4/00007.bin", data)
    _write(tmp_path, "Test/9/00002.bin", _encode(1, 2, 0, 10))
    es = load_nmnist("test", data_dir=tmp_path, download=False, verify=False)  # 8.04 s: implausible
    assert es.files == ("Test/9/00002.bin", "Test/4/00007.bin") and es.labels.tolist() == [9, 4]
    first, second = es.events[1], es.events[0]
    assert second.tolist() == [(1, 2, 0, 10)]
    # the y=240 marker is dropped and adds 2^13 us to the later events of its file only
    assert first.tolist() == [(3, 33, 1, 0x7ABCDE), (33, 0, 0, 5 + 8192)]


def test_official_validation_range_used_when_present(tmp_path):
    _write(tmp_path, "Train/2/00001.bin", _encode(1, 1, 1, 1))
    _write(tmp_path, "Train/3/50001.bin", _encode(2, 2, 0, 2))
    _write(tmp_path, "Train/7/60000.bin", _encode(2, 2, 0, 2))
    assert load_nmnist("train", data_dir=tmp_path).files == ("Train/2/00001.bin",)
    val = load_nmnist("validation", data_dir=tmp_path)
    assert val.files == ("Train/3/50001.bin", "Train/7/60000.bin") and val.note == ""


def test_length_not_multiple_of_5_names_file(shared_data, tmp_path):
    path = _write(tmp_path, "Test/7/00001.bin", (shared_data / "nmnist/Test/7/00001.bin").read_bytes()[:-2])
    with pytest.raises(DataError, match=f"{path}: length 16648 bytes is not a multiple of 5"):
        load_nmnist("test", data_dir=tmp_path)


def test_empty_event_file_names_file(tmp_path):
    path = _write(tmp_path, "Test/1/00003.bin", b"")
    with pytest.raises(DataError, match=f"{path}: empty event file"):
        load_nmnist("test", data_dir=tmp_path)


def test_out_of_range_coordinate_names_file(shared_data, tmp_path):
    for src in (shared_data / "nmnist" / "Test").glob("*/*.bin"):  # copyfile: writable copies
        _write(tmp_path, src.relative_to(shared_data / "nmnist").as_posix(), src.read_bytes())
    path = tmp_path / "nmnist" / "Test" / "2" / "00002.bin"
    data = bytearray(path.read_bytes())
    data[5 * 10] = 34  # x of the 11th event
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"{path}: event coordinate x=34, y=.* outside the 34x34 sensor \\(0..33\\), event 11 of the file"):
        load_nmnist("test", data_dir=tmp_path)


def test_layout_errors_name_file(tmp_path):
    path = _write(tmp_path, "Test/7/sample.bin", _encode(1, 1, 1, 1))
    with pytest.raises(DataError, match=f"{path}: not in the N-MNIST layout"):
        load_nmnist("test", data_dir=tmp_path)
    path.unlink()
    _write(tmp_path, "Test/7/00001.bin", _encode(1, 1, 1, 1))
    _write(tmp_path, "Test/8/00001.bin", _encode(1, 1, 1, 1))
    with pytest.raises(DataError, match="two files with sample index 1"):
        load_nmnist("test", data_dir=tmp_path)


# --- structural plausibility: checked with or without a manifest ------------------------------

def _events(n=20, t0=0, step=1000):
    return b"".join(_encode(i % 34, (3 * i) % 34, i % 2, t0 + i * step) for i in range(n))


def test_timestamps_running_backwards_are_refused(tmp_path):
    data = bytearray(_events())
    data[5 * 7 : 5 * 9] = data[5 * 8 : 5 * 9] + data[5 * 7 : 5 * 8]  # swap events 8 and 9
    path = _write(tmp_path, "Test/3/00001.bin", bytes(data))
    with pytest.raises(DataError) as e:
        load_nmnist("test", data_dir=tmp_path)
    assert str(e.value).startswith(f"{path}: timestamps run backwards at event 9 (8000 us, then 7000 us)")
    assert len(load_nmnist("test", data_dir=tmp_path, verify=False).events[0]) == 20


def test_recording_of_several_seconds_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "Test/3/00001.bin", _events(step=200_000))  # ends at 3.8 s
    with pytest.raises(DataError, match=f"{path}: recording ends at 3.800 s, implausible for N-MNIST"):
        load_nmnist("test", data_dir=tmp_path)
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", "1")
    assert load_nmnist("test", data_dir=tmp_path).events[0]["t"].max() == 3_800_000


def test_bin_that_is_a_folder(tmp_path):
    (tmp_path / "nmnist" / "Test" / "3" / "00001.bin").mkdir(parents=True)
    _write(tmp_path, "Test/4/00002.bin", _events())
    with pytest.raises(DataAccessError, match="Test/3/00001.bin: is not a regular file"):
        load_nmnist("test", data_dir=tmp_path, download=False)


def test_unreadable_class_folder_is_an_error_not_a_missing_class(tmp_path, monkeypatch):
    _write(tmp_path, "Test/3/00001.bin", _events())
    _write(tmp_path, "Test/4/00002.bin", _events())
    blocked = str(tmp_path / "nmnist" / "Test" / "4")
    real = os.scandir

    def scandir(path="."):
        if str(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataAccessError) as e:
        load_nmnist("test", data_dir=tmp_path, download=False)
    assert str(e.value) == f"{blocked}: permission denied (cannot list the folder)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_with_chmod(tmp_path):
    path = _write(tmp_path, "Test/3/00001.bin", _events())
    path.chmod(0)
    with pytest.raises(DataAccessError, match=f"{path}: permission denied"):
        load_nmnist("test", data_dir=tmp_path)


def test_subset_note_is_one_clean_log_line_once(tmp_path, monkeypatch, caplog):
    for i in range(1, 7):
        _write(tmp_path, f"Train/{i % 10}/{i:05d}.bin", _events())
    monkeypatch.setattr(nmnist_module, "_logged_notes", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UserWarning (it printed a line of source code)
        with caplog.at_level(logging.WARNING, logger="astrosnn"):
            load_nmnist("train", data_dir=tmp_path)
            load_nmnist("validation", data_dir=tmp_path)
            es = load_nmnist("train", data_dir=tmp_path)
    assert [r.name for r in caplog.records] == ["astrosnn.data.nmnist"]
    assert caplog.records[0].getMessage() == f"astrosnn: note: {es.note}"
    assert "\n" not in es.note and es.note.startswith("only 6 training files present")


# --- MANIFEST.tsv md5s ------------------------------------------------------------------------

def _with_manifest(tmp_path, files):
    rows = ["placed_path\tlabel\tmd5"]
    for rel, data in files.items():
        _write(tmp_path, rel, data)
        rows.append(f"{rel}\t{rel.split('/')[1]}\t{hashlib.md5(data).hexdigest()}")
    (tmp_path / "nmnist" / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")


def test_manifest_catches_a_dropped_event(tmp_path):
    data = _events()
    _with_manifest(tmp_path, {"Test/3/00001.bin": data, "Test/4/00002.bin": data})
    assert len(load_nmnist("test", data_dir=tmp_path).events) == 2
    path = _write(tmp_path, "Test/4/00002.bin", data[:25] + data[30:])  # structurally fine
    with pytest.raises(ChecksumError) as e:
        load_nmnist("test", data_dir=tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: md5 checksum mismatch (expected {hashlib.md5(data).hexdigest()} from MANIFEST.tsv")
    assert "verify=False" in msg and "ASTROSNN_SKIP_CHECKSUMS=1" in msg
    assert len(load_nmnist("test", data_dir=tmp_path, verify=False).events[1]) == 19


def test_manifest_listed_file_missing_or_unlisted_file(tmp_path):
    _with_manifest(tmp_path, {"Test/3/00001.bin": _events(), "Test/4/00002.bin": _events(5)})
    (tmp_path / "nmnist" / "Test" / "4" / "00002.bin").unlink()
    with pytest.raises(ChecksumError, match="Test/4/00002.bin: listed in .*MANIFEST.tsv but missing"):
        load_nmnist("test", data_dir=tmp_path)
    _write(tmp_path, "Test/4/00002.bin", _events(5))
    extra = _write(tmp_path, "Test/7/00009.bin", _events(5))
    with pytest.raises(ChecksumError, match=f"{extra}: not listed in .*MANIFEST.tsv"):
        load_nmnist("test", data_dir=tmp_path)
    assert len(load_nmnist("test", data_dir=tmp_path, verify=False).events) == 3


def test_malformed_manifest_names_it(tmp_path):
    _write(tmp_path, "Test/3/00001.bin", _events())
    manifest = tmp_path / "nmnist" / "MANIFEST.tsv"
    manifest.write_text("path\tmd5\nTest/3/00001.bin\tabc\n")
    with pytest.raises(DataError, match=f"{manifest}: not a manifest"):
        load_nmnist("test", data_dir=tmp_path)
    manifest.write_text("placed_path\tmd5\nTest/3/00001.bin\tnot-an-md5\n")
    with pytest.raises(DataError, match="MANIFEST.tsv: line 2: 'not-an-md5' is not an md5"):
        load_nmnist("test", data_dir=tmp_path)


def test_real_subset_byte_flip_caught_by_manifest(shared_data, tmp_path):
    src = shared_data / "nmnist"
    shutil.copyfile(src / "MANIFEST.tsv", tmp_path / "MANIFEST.tsv")
    root = tmp_path / "nmnist"
    shutil.copytree(src / "Test", root / "Test")
    shutil.copyfile(src / "MANIFEST.tsv", root / "MANIFEST.tsv")
    assert len(load_nmnist("test", data_dir=tmp_path).events) == 100
    path = root / "Test" / "0" / "00004.bin"
    data = bytearray(path.read_bytes())
    data[5 * 100 + 2] ^= 0x80  # one event's polarity: every structural check still passes
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="Test/0/00004.bin: md5 checksum mismatch"):
        load_nmnist("test", data_dir=tmp_path)


def test_too_few_training_files_for_a_validation_split(tmp_path):
    _write(tmp_path, "Train/3/00001.bin", _events())
    _write(tmp_path, "Train/4/00002.bin", _events())
    train, val = load_nmnist("train", data_dir=tmp_path), load_nmnist("validation", data_dir=tmp_path)
    assert train.files == ("Train/3/00001.bin", "Train/4/00002.bin") and val.files == ()
    assert "too few for a validation split" in train.note
