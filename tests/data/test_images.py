import gzip
import shutil

import numpy as np
import pytest

from astrosnn.data import registry
from astrosnn.data.idx import IMAGES_MAGIC, parse_idx, read_idx
from astrosnn.data.images import FASHION_CLASSES, load_images
from astrosnn.errors import AstrosnnError, ChecksumError, DataAccessError, DataError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist(shared_data):
    return {s: load_images("mnist", s, data_dir=shared_data, download=False) for s in ("train", "validation", "test")}


def test_mnist_splits_shapes_and_labels(mnist, shared_data):
    sizes = {s: len(d.labels) for s, d in mnist.items()}
    assert sizes == {"train": 50_000, "validation": 10_000, "test": 10_000}
    for s, d in mnist.items():
        assert d.images.dtype == np.uint8 and d.images.shape == (sizes[s], 28, 28)
        assert d.labels.dtype == np.int64
        assert d.classes == tuple("0123456789") and d.split == s and d.name == "mnist"
        assert d.source == str(shared_data / "mnist")
    assert mnist["train"].labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist["test"].labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist["test"].labels).tolist() == MNIST_TEST_COUNTS
    both = np.concatenate([mnist["train"].labels, mnist["validation"].labels])
    assert np.bincount(both).tolist() == MNIST_TRAIN_COUNTS
    assert mnist["test"].images.max() == 255 and mnist["test"].images.min() == 0


def test_mnist_validation_is_last_10000_of_training_file(mnist, shared_data):
    raw = read_idx(shared_data / "mnist" / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)
    np.testing.assert_array_equal(mnist["validation"].images, raw[50_000:])
    np.testing.assert_array_equal(mnist["train"].images, raw[:50_000])


def test_limit_keeps_first_n(shared_data):
    d = load_images("mnist", "test", data_dir=shared_data, limit=5)
    assert d.images.shape == (5, 28, 28) and d.labels.tolist() == [7, 2, 1, 0, 4]
    assert len(load_images("digits", "test", limit=1000).labels) == 400


def test_fashion_mnist_balanced_classes(shared_data):
    test = load_images("fashion-mnist", "test", data_dir=shared_data)
    assert test.images.shape == (10_000, 28, 28)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes == FASHION_CLASSES and test.classes[9] == "Ankle boot"
    val = load_images("fashion-mnist", "validation", data_dir=shared_data)
    assert len(val.labels) == 10_000 and val.labels[:3].tolist() == [9, 2, 1]


def test_digits_embedded_splits_and_rescale(tmp_path):
    sets = {s: load_images("digits", s, data_dir=tmp_path / "none") for s in ("train", "validation", "test")}
    assert {s: d.images.shape for s, d in sets.items()} == {
        "train": (1000, 8, 8), "validation": (397, 8, 8), "test": (400, 8, 8)
    }
    assert sets["train"].labels[:10].tolist() == list(range(10))  # unshuffled order
    allimg = np.concatenate([d.images for d in sets.values()])
    assert allimg.dtype == np.uint8 and allimg.max() == 255
    # 0..16 -> 0..255: every value is a rescaled integer level
    assert set(np.unique(allimg).tolist()) <= {round(v * 255 / 16) for v in range(17)}
    assert not (tmp_path / "none").exists()  # no download, nothing written


def test_bad_arguments():
    with pytest.raises(AstrosnnError, match="unknown image dataset 'cifar'"):
        load_images("cifar", "train")
    with pytest.raises(AstrosnnError, match="unknown split 'val'"):
        load_images("digits", "val")
    with pytest.raises(AstrosnnError, match="limit"):
        load_images("digits", "train", limit=-1)


# --- corrupted copies (structure: checked even with verify=False) -------------------------------------------------------------------------

def _copy_test_files(shared_data, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(shared_data / "mnist" / name, folder / name)
    return folder


def _rewrite(path, edit):
    data = bytearray(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(bytes(edit(data)), compresslevel=1))


def test_truncated_gzip_names_file(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: truncated gzip"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


def test_not_gzip_names_file(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: corrupt gzip"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


def test_wrong_magic_names_file(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)

    def swap_magic(d):
        d[3] = 0x01  # 2049 (labels) where images (2051) belong
        return d

    _rewrite(folder / "t10k-images-idx3-ubyte.gz", swap_magic)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: wrong IDX magic number 2049 \(expected 2051\)"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


def test_image_label_count_mismatch_names_both_files(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)

    def drop_last_label(d):
        d[4:8] = (9999).to_bytes(4, "big")
        return d[:-1]

    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", drop_last_label)
    with pytest.raises(DataError, match="10000 images but .*t10k-labels-idx1-ubyte.gz holds 9999 labels"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


def test_data_shorter_than_header_says(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    _rewrite(folder / "t10k-images-idx3-ubyte.gz", lambda d: d[:-784])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: IDX data size mismatch"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


def test_label_out_of_range(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)

    def bad_label(d):
        d[8] = 12
        return d

    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", bad_label)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: label 12 out of range"):
        load_images("mnist", "test", data_dir=tmp_path, download=False, verify=False)


# --- known checksums are enforced -------------------------------------------------------------

def _relabel(d):
    d[8] = (d[8] + 1) % 10  # a plausible label, a valid gzip: only the checksum can tell
    return d


def test_checksum_mismatch_is_refused_naming_file_expected_and_actual(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", _relabel)
    with pytest.raises(ChecksumError) as e:
        load_images("mnist", "test", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert msg.startswith(f"{folder / 't10k-labels-idx1-ubyte.gz'}: md5 checksum mismatch (expected ec29112dd5afa0611ce80d1b7f02629c")
    assert "got " in msg and "verify=False" in msg and "ASTROSNN_SKIP_CHECKSUMS=1" in msg and "\n" not in msg


def test_checksum_opt_outs_keyword_and_env(shared_data, tmp_path, monkeypatch):
    folder = _copy_test_files(shared_data, tmp_path)
    _rewrite(folder / "t10k-labels-idx1-ubyte.gz", _relabel)
    assert load_images("mnist", "test", data_dir=tmp_path, verify=False, limit=1).labels.tolist() == [8]
    monkeypatch.setenv("ASTROSNN_SKIP_CHECKSUMS", "1")
    assert load_images("mnist", "test", data_dir=tmp_path, limit=1).labels.tolist() == [8]


def test_truncated_file_checksum_message_gives_sizes(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(ChecksumError, match="100,000 bytes, expected 1,648,877"):
        load_images("mnist", "test", data_dir=tmp_path, download=False)


def test_fashion_mnist_flipped_bytes_refused(shared_data, tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(shared_data / "fashion-mnist" / name, folder / name)
    path = folder / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[4] ^= 0xFF  # the gzip header's mtime: gunzips fine, and to the same images
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz: md5 checksum mismatch"):
        load_images("fashion-mnist", "test", data_dir=tmp_path, download=False)


# --- headers, folders and permissions ----------------------------------------------------------

def test_idx_header_whose_dimension_product_overflows(tmp_path):
    big = (2**32 - 1).to_bytes(4, "big")
    data = (2051).to_bytes(4, "big") + big * 3 + bytes(16)
    with pytest.raises(DataError, match=r"x\.idx: IDX data size mismatch: header says 4294967295x4294967295x4294967295"):
        parse_idx(tmp_path / "x.idx", data, IMAGES_MAGIC)
    # 2^31 * 2^31 * 4 = 2^64 wraps to 0 in int64 arithmetic, "matching" an empty body: still refused
    path = tmp_path / "images.idx"
    path.write_bytes((2051).to_bytes(4, "big") + (2**31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big"))
    with pytest.raises(DataError, match="images.idx: IDX data size mismatch: header says 2147483648x2147483648x4"):
        read_idx(path, IMAGES_MAGIC)


def test_data_file_that_is_a_folder(shared_data, tmp_path):
    folder = _copy_test_files(shared_data, tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").mkdir()
    with pytest.raises(DataAccessError, match="t10k-labels-idx1-ubyte.gz: is a folder, expected a data file"):
        load_images("mnist", "test", data_dir=tmp_path, download=True)  # no download attempt for a folder


def test_unreadable_file_says_permission_denied(shared_data, tmp_path, monkeypatch):
    folder = _copy_test_files(shared_data, tmp_path)
    target = folder / "t10k-images-idx3-ubyte.gz"
    real = type(target).read_bytes

    def read_bytes(self):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(type(target), "read_bytes", read_bytes)
    with pytest.raises(DataAccessError) as e:
        load_images("mnist", "test", data_dir=tmp_path, download=False)
    assert str(e.value) == f"{target}: permission denied (cannot read the file)"


def test_unsearchable_folder_says_permission_denied(tmp_path, monkeypatch):
    blocked = tmp_path / "mnist"
    real = type(blocked).stat

    def stat(self, **kw):
        if self.parent == blocked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, **kw)

    monkeypatch.setattr(type(blocked), "stat", stat)
    with pytest.raises(DataAccessError, match=f"{blocked}/t10k-images-idx3-ubyte.gz: permission denied"):
        load_images("mnist", "test", data_dir=tmp_path, download=True)


def test_registry_sizes_are_known():
    for spec in (registry.MNIST, registry.FASHION_MNIST, registry.PTB, registry.TINYSHAKESPEARE):
        assert all(f.size for f in spec.files)


def test_messages_show_plain_numbers():
    with pytest.raises(AstrosnnError) as e:
        load_images("digits", "train", limit=np.int64(-1))
    assert str(e.value) == "limit must be a non-negative integer, got -1"
    with pytest.raises(AstrosnnError) as e:
        load_images("digits", "train", limit=[np.int64(4)])
    assert str(e.value) == "limit must be a non-negative integer, got [4]"
