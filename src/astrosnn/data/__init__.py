"""Datasets (IDX images, N-MNIST events, text corpora, memory-mapped token folders), spike encoders, and where data comes from."""
