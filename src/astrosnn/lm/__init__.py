"""AM-SU layer, AstroSNN language model, baselines, training and generation."""
