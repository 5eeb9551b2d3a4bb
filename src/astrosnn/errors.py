"""The one exception type the library raises for bad input; the CLI prints it as one line."""


class AstrosnnError(ValueError):
    """Bad input, a missing or corrupt file, an unknown option: the message names the problem."""


class DataError(AstrosnnError):
    """A dataset file is missing, corrupt or malformed; the message names the file and the fault."""
