"""The old name of :mod:`astrosnn.nalsm`, kept so that code written for astrosnn 0.1 still imports.

``import astrosnn.liquid.engine`` (or any other submodule) returns the very module object of
``astrosnn.nalsm.engine``: one set of classes, one numba cache.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from astrosnn.nalsm import *  # noqa: F403
from astrosnn.nalsm import __all__  # noqa: F401

_NEW = "astrosnn.nalsm"


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``astrosnn.liquid.X`` to the already-importable ``astrosnn.nalsm.X``."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(__name__ + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(_NEW + spec.name[len(__name__) :])

    def exec_module(self, module):
        pass  # the module was executed under its new name


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
