"""Initializers: the lecture's named presets over Keras's, and data-driven LSUV."""

from kerastoolkit.initializers.lsuv import lsuv
from kerastoolkit.initializers.variance_scaling import PRESETS
from kerastoolkit.initializers.variance_scaling import get
from kerastoolkit.initializers.variance_scaling import kaiming
from kerastoolkit.initializers.variance_scaling import xavier
from kerastoolkit.initializers.variance_scaling import xavier_fan_in
from kerastoolkit.initializers.variance_scaling import zeros
from kerastoolkit.initializers.zero_init_residual import zero_init_residual_gamma
