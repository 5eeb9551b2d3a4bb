"""The "cuda" backend: the plain-torch reference batched on a CUDA GPU (phase 2's samples in parallel).

Not bit-exact against the CPU (atomic per-synapse sums); `tests/nalsm/test_engine_backends.py` holds the same
code equal to the reference on the CPU, and BENCHMARKS.md gets its speed when a GPU is available.
"""

from __future__ import annotations

import torch

from astrosnn.nalsm.backends.reference import ReferenceBackend

if not torch.cuda.is_available():
    raise ImportError("no CUDA device (torch.cuda.is_available() is False)")

BACKEND = ReferenceBackend(device="cuda")
