"""Datasets (IDX images, N-MNIST events, text corpora), spike encoders, and where data comes from."""
