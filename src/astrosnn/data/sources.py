"""Where data comes from: --data-dir > $ASTROSNN_DATA > the user cache; missing files are fetched with pooch."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from astrosnn.data.registry import DatasetFiles, RemoteFile
from astrosnn.errors import DataAccessError, DataError

ENV_VAR = "ASTROSNN_DATA"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the option if given, else $ASTROSNN_DATA, else the user cache folder."""
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir).expanduser()
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR]).expanduser()
    else:
        import pooch

        path = Path(pooch.os_cache("astrosnn"))
    if path_kind(path, "data folder") not in ("dir", "missing"):
        raise DataAccessError(f"data folder {path} is not a folder")
    return path


def data_dir_origin(data_dir: str | Path | None = None) -> str:
    """Which rule chose the data folder, for reports."""
    if data_dir is not None and str(data_dir) != "":
        return "--data-dir"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return "user cache"


def oserror_text(e: OSError) -> str:
    """A short, lower-case reason for a failed file operation ("permission denied", not a traceback)."""
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a folder, expected a file"
    if isinstance(e, NotADirectoryError):
        return "a part of the path is not a folder"
    return (e.strerror or type(e).__name__).lower()


def path_kind(path: Path, what: str = "") -> str:
    """'file', 'dir', 'missing' or 'other' (a device, a socket); a path that cannot be looked at (e.g. a folder
    above it is not searchable) is a DataError naming it, never a traceback or a silent 'missing'."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        raise DataAccessError(f"{what + ' ' if what else ''}{path}: {oserror_text(e)} (cannot look at it)") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "dir" if stat.S_ISDIR(st.st_mode) else "other"


def require_file_kind(path: Path) -> bool:
    """True for a regular file, False when absent; a folder (or device) where a data file belongs is a DataError."""
    kind = path_kind(path)
    if kind == "dir":
        raise DataAccessError(f"{path}: is a folder, expected a data file")
    if kind == "other":
        raise DataAccessError(f"{path}: not a regular file")
    return kind == "file"


def list_dir(path: Path) -> list[os.DirEntry]:
    """The entries of a folder, sorted by name; an unreadable folder is a DataError naming it (never skipped)."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except NotADirectoryError:
        raise DataAccessError(f"{path}: is a file, expected a folder") from None
    except OSError as e:
        raise DataAccessError(f"{path}: {oserror_text(e)} (cannot list the folder)") from None


def is_present(remote: RemoteFile, folder: Path) -> bool:
    """A plain file is present when it exists; an archive when its unpacked folder holds any `.bin` file.

    A folder where a file belongs, or a folder that cannot be read, is a DataError rather than 'missing'
    (which would start a download or hide data)."""
    if remote.unpacks_to is not None:
        unpacked = folder / remote.unpacks_to
        kind = path_kind(unpacked)
        if kind == "missing":
            return False
        if kind != "dir":
            raise DataAccessError(f"{unpacked}: is a file, expected a folder of <label>/<NNNNN>.bin files")
        for entry in list_dir(unpacked):
            sub = unpacked / entry.name
            if path_kind(sub) == "dir" and any(e.name.endswith(".bin") for e in list_dir(sub)):
                return True
        return False
    return require_file_kind(folder / remote.name)


def fetch_file(remote: RemoteFile, folder: Path) -> None:
    """Download one file with pooch (hash verified before it is moved in); unpack archives."""
    import pooch

    processor = pooch.Unzip(extract_dir=str(folder)) if remote.unpacks_to is not None else None
    pooch.retrieve(
        url=remote.url,
        known_hash=remote.known_hash,
        fname=remote.name,
        path=str(folder),
        processor=processor,
        progressbar=True,
    )


def _what_to_put(spec: DatasetFiles, remote: RemoteFile) -> str:
    if remote.unpacks_to is not None:
        return f"{remote.unpacks_to}/<label>/<NNNNN>.bin (unpacked {remote.name})"
    return remote.name


def require_files(
    spec: DatasetFiles,
    data_dir: str | Path | None = None,
    download: bool = True,
    names: Iterable[str] | None = None,
) -> Path:
    """Make sure the named files of `spec` are in `<data dir>/<folder>`; return that folder.

    Missing files are downloaded when `download` is true; when that fails (or is off), one DataError
    says which files to put in which folder.
    """
    folder = resolve_data_dir(data_dir) / spec.folder
    wanted = spec.files if names is None else tuple(spec.file(n) for n in names)
    missing = [f for f in wanted if not is_present(f, folder)]
    if not missing:
        return folder
    reason = "download=False"
    if download:
        failed = []
        for remote in missing:
            try:
                fetch_file(remote, folder)
            except Exception as e:  # network, hash mismatch, read-only folder: all end in one message
                failed.append(remote)
                reason = f"download from {spec.origin} failed: {type(e).__name__}: {_first_line(e)}"
        missing = [f for f in failed if not is_present(f, folder)]
        if not missing:
            return folder
    files = ", ".join(_what_to_put(spec, f) for f in missing)
    raise DataError(
        f"{spec.key}: missing {files} in {folder} ({reason}); put these files from {spec.origin} "
        f"in that folder, or point --data-dir or ${ENV_VAR} at a folder holding {spec.folder}/"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""


def read_file_bytes(path: Path) -> bytes:
    """A data file's raw bytes; a missing, unreadable or folder path is a DataError naming it and the fault."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataAccessError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataAccessError(f"{path}: is a folder, expected a data file") from None
    except OSError as e:
        raise DataAccessError(f"{path}: {oserror_text(e)} (cannot read the file)") from None
