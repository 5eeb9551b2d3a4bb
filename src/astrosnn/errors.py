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
