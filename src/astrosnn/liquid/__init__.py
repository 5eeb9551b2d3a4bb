"""NALSM: liquid topology, simulation engine, plasticity phases, readout and diagnostics."""
