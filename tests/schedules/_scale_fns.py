"""A registered scale function for `kt.schedules.Cyclical` (importable in a fresh process)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastoolkit_tests")
def fifth_root_decay(x):
    """`1 / 5^(x / 10)`: a non-trivial amplitude decay, in `keras.ops`."""
    return ops.power(5.0, ops.multiply(x, -0.1))
