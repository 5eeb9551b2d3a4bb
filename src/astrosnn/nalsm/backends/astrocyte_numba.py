"""The astrocyte's millisecond (spec steps 10-11) as one numba function, shared by the fast and event kernels."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def astrocyte_ms(fired, nf, mask, n, a_val, a_w, a_b, a_tau, eta, decay):
    """The astrocyte integrates the spikes it sees (liquid minus input; `fired[:nf]` the neurons that spiked,
    `mask` the ones it sees, indices >= n are inputs), then the learning and astrocyte rates decay.

    Returns the new (a_val, a_w, a_b, eta), all float32 like the arguments."""
    seen_liquid = 0  # 10
    seen_input = 0
    for k in range(nf):
        i = fired[k]
        if mask[i]:
            if i < n:
                seen_liquid += 1
            else:
                seen_input += 1
    drive = np.float32(seen_liquid - seen_input)
    a_val = a_val + (a_w * drive + a_b - a_val) / a_tau
    if decay != np.float32(1.0):  # 11
        eta = eta * decay
        a_val = a_val * decay
        a_w = a_w * decay
        a_b = a_b * decay
    return a_val, a_w, a_b, eta
