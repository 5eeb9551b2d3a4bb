"""The one exception type the library raises for bad input; the CLI prints it as one line."""


class AstrosnnError(ValueError):
    """Bad input, a missing or corrupt file, an unknown option: the message names the problem."""


class DataError(AstrosnnError):
    """A dataset file is missing, corrupt or malformed; the message names the file and the fault."""


class ChecksumError(DataError):
    """A dataset file differs from its known checksum (registry or MANIFEST.tsv); the message names the file,
    the expected and the actual value, and the opt-out for deliberately modified data."""


class DataAccessError(DataError):
    """A dataset file or folder cannot be read (permission denied, a folder where a file belongs, ...)."""


def plain(value: object) -> str:
    """repr() for error messages with numpy scalars shown as plain numbers: [4], not [np.int64(4)]."""

    def unwrap(v: object) -> object:
        if hasattr(v, "item") and type(v).__module__ == "numpy" and getattr(v, "ndim", None) == 0:
            return v.item()
        if isinstance(v, (list, tuple)):
            return type(v)(unwrap(x) for x in v)
        if isinstance(v, dict):
            return {unwrap(k): unwrap(x) for k, x in v.items()}
        return v

    return repr(unwrap(value))
