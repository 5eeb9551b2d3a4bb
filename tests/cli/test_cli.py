import subprocess
import sys

import pytest

from astrosnn import __version__
from astrosnn.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for group in ("data", "nalsm", "lm"):
        assert group in out


def test_console_entry_point_runs_as_module():
    r = subprocess.run([sys.executable, "-m", "astrosnn", "--version"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.strip() == f"astrosnn {__version__}"
