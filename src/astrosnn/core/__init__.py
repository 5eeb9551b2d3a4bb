"""Pure dynamics shared by both flagships: neurons, surrogate gradients, traces, astrocytes, plasticity.

Nothing here knows about datasets, files or the CLI.
"""
