"""Stochastic depth (Huang et al., 2016) for residual branches."""

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.layers._random import check_seed


@keras.saving.register_keras_serializable(package="kerastoolkit")
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch per example during training.

    Apply it to the output `f(x)` of a residual branch, before the addition
    `x + f(x)`. In training each example's branch is kept with probability
    `1 - rate`:

    ```python
    b ~ Bernoulli(1 - rate) per example
    y = b · f(x) / (1 - rate)        # training
    y = f(x)                         # inference
    ```

    This is the "inverted" form used by timm's `drop_path` and Keras-CV:
    the paper (Huang et al.) trains with `y = b · f(x)` and multiplies by the
    survival probability at inference, `y = (1 - rate) · f(x)`. Both have the
    same expectation; the inverted form leaves inference untouched, so the
    exported model has no extra multiply. Use a `rate` growing linearly with
    depth (the paper's "linear decay" rule, `rate_l = l/L · rate_L` with
    `rate_L = 0.5`).

    Args:
        rate: Probability of dropping the branch, in `[0, 1)`. Defaults to
            `0.1`.
        seed: Integer seed of a `keras.random.SeedGenerator`, or `None`.
            Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `rate` or `seed` have the wrong type.
        ValueError: if `rate` is outside `[0, 1)`.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    inputs = keras.Input((16,))
    branch = keras.layers.Dense(16, activation="relu")(inputs)
    branch = keras.layers.Dense(16)(branch)
    outputs = keras.layers.Add()([inputs, kt.layers.StochasticDepth(0.2)(branch)])
    ```

    References:
        - Huang, Sun, Liu, Sedra & Weinberger, 2016, "Deep Networks with
          Stochastic Depth", ECCV (arXiv:1603.09382).
    """

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _checks.check_real("rate", rate, 0.0, 1.0, high_open=True)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = [ops.shape(inputs)[0]] + [1] * (len(inputs.shape) - 1)
        keep = keras.random.uniform(shape, dtype="float32", seed=self.seed_generator) >= self.rate
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
