"""Normalization, noise and regularization layers Keras lacks."""
