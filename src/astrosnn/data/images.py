"""Image datasets: MNIST, Fashion-MNIST (IDX gzip files) and scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrosnn.data import registry
from astrosnn.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from astrosnn.data.sources import require_files
from astrosnn.data.verify import verification_on
from astrosnn.errors import AstrosnnError, DataError, plain

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")
SPLITS = ("train", "validation", "test")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))
IDX_TRAIN_SIZE, IDX_TEST_SIZE, IDX_VALIDATION_SIZE = 60_000, 10_000, 10_000
DIGITS_SPLITS = {"train": (0, 1000), "validation": (1000, 1397), "test": (1397, 1797)}


@dataclass(frozen=True)
class ImageSet:
    name: str
    split: str
    images: np.ndarray  # uint8 (N, H, W)
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    source: str  # where it was read from


def _check_args(name: str, split: str, limit: int | None) -> None:
    if name not in IMAGE_DATASETS:
        raise AstrosnnError(f"unknown image dataset {name!r}; choose from {', '.join(IMAGE_DATASETS)}")
    if split not in SPLITS:
        raise AstrosnnError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise AstrosnnError(f"limit must be a non-negative integer, got {plain(limit)}")


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 bundled 8x8 digits, values 0..16 rescaled to 0..255, unshuffled."""
    from sklearn.datasets import load_digits

    d = load_digits()
    a, b = DIGITS_SPLITS[split]
    images = np.rint(d.images[a:b] * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target[a:b].astype(np.int64)


def read_idx_pair(
    images_path: Path,
    labels_path: Path,
    count: int,
    classes: int = 10,
    known: tuple[registry.RemoteFile, registry.RemoteFile] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An images/labels IDX pair: 28x28 images, matching counts, the expected count, labels < classes.

    With `known` (the registry entries of the images and the labels file), each must match its checksum."""
    known_images, known_labels = known or (None, None)
    images = read_idx(images_path, IMAGES_MAGIC, known_images)
    labels = read_idx(labels_path, LABELS_MAGIC, known_labels)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if len(images) != count:
        raise DataError(f"{images_path}: holds {len(images)} images, the official file has {count}")
    if labels.size and labels.max() >= classes:
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0..{classes - 1}")
    return images, labels


def load_idx_split(
    spec: registry.DatasetFiles, split: str, data_dir, download: bool, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, Path]:
    prefix = "t10k" if split == "test" else "train"
    names = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    folder = require_files(spec, data_dir, download, names=names)
    count = IDX_TEST_SIZE if split == "test" else IDX_TRAIN_SIZE
    known = (spec.file(names[0]), spec.file(names[1])) if verification_on(verify) else None
    images, labels = read_idx_pair(folder / names[0], folder / names[1], count, known=known)
    if split == "train":
        images, labels = images[: count - IDX_VALIDATION_SIZE], labels[: count - IDX_VALIDATION_SIZE]
    elif split == "validation":
        images, labels = images[count - IDX_VALIDATION_SIZE :], labels[count - IDX_VALIDATION_SIZE :]
    return images, labels, folder


def load_images(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    download: bool = True,
    verify: bool = True,
) -> ImageSet:
    """`name` in digits / mnist / fashion-mnist; `split` in train / validation / test; `limit` keeps the first N.

    MNIST and Fashion-MNIST: train = first 50,000 training images, validation = the last 10,000,
    test = the official 10,000. digits: train = first 1000, validation = next 397, test = last 400.
    Each IDX file must match its published md5 (a ChecksumError names the file otherwise); `verify=False`
    or $ASTROSNN_SKIP_CHECKSUMS=1 skips that for deliberately modified files (the structure is still checked).
    """
    _check_args(name, split, limit)
    if name == "digits":
        images, labels = load_digits_split(split)
        classes, source = DIGIT_CLASSES, "scikit-learn load_digits (bundled)"
    else:
        spec = registry.MNIST if name == "mnist" else registry.FASHION_MNIST
        images, labels, folder = load_idx_split(spec, split, data_dir, download, verify)
        classes = DIGIT_CLASSES if name == "mnist" else FASHION_CLASSES
        source = str(folder)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet(
        name=name,
        split=split,
        images=np.ascontiguousarray(images).copy(),
        labels=labels.astype(np.int64),
        classes=classes,
        source=source,
    )
