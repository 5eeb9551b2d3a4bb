"""Plots: spike rasters with the astrocyte trace, branching factor, learning curves."""
