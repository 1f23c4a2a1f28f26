"""Normalization, noise and regularization layers Keras lacks."""

from kerastoolkit.layers.instance_normalization import InstanceNormalization
from kerastoolkit.layers.ghost_batch_normalization import GhostBatchNormalization
