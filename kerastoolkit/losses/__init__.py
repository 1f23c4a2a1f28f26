"""Losses Keras lacks: cross-entropy with the lecture's label smoothing."""

from kerastoolkit.losses.crossentropy import CategoricalCrossentropy
from kerastoolkit.losses.crossentropy import SparseCategoricalCrossentropy
from kerastoolkit.losses.crossentropy import smoothed_targets
