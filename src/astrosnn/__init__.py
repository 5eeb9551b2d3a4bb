"""astrosnn: astrocyte-modulated spiking neural networks (NALSM and AstroSNN)."""

from astrosnn.errors import AstrosnnError

__version__ = "0.1.0"

__all__ = ["AstrosnnError", "__version__"]
