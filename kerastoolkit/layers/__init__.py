"""Normalization, noise and regularization layers Keras lacks."""

from kerastoolkit.layers.standardize import Standardize
