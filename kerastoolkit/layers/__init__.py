"""Normalization, noise and regularization layers Keras lacks."""

from kerastoolkit.layers.instance_normalization import InstanceNormalization
