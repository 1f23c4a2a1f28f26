"""DropConnect (Wan et al., 2013): dropout on a layer's weights."""

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.layers._kernel_wrapper import KernelWrapper
from kerastoolkit.layers._random import check_seed


@keras.saving.register_keras_serializable(package="kerastoolkit")
class DropConnect(KernelWrapper):
    """Drops individual kernel weights at random during training.

    In training the wrapped layer runs with

    ```python
    W̃ = W ⊙ M / (1 - rate),   M_ij ~ Bernoulli(1 - rate), drawn at every call
    ```

    in place of its kernel (the bias is kept). This is the "inverted"
    scaling of `keras.layers.Dropout`, so the expected kernel in training is
    `W` and inference (`training=False`) uses `W` unchanged. (Wan et al.
    train without the `1/(1 - rate)` factor and approximate the mean network
    at inference by moment-matched Gaussian sampling; the inverted scaling
    gives the same expected pre-activation at no inference cost.) One mask is
    shared by the whole batch, as in the paper's efficient variant.

    Args:
        layer: A Keras layer with a `kernel` weight (Dense, Conv...).
        rate: Probability of dropping each weight, in `[0, 1)`. Defaults to
            `0.5` (the paper's value).
        seed: Integer seed of a `keras.random.SeedGenerator`, or `None`.
            Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `layer` is not a Keras layer or `rate`/`seed` have the
            wrong type.
        ValueError: if `rate` is outside `[0, 1)`, or (at build) the layer
            has no `kernel`.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    layer = kt.layers.DropConnect(keras.layers.Dense(64), rate=0.3, seed=1)
    ```

    References:
        - Wan, Zeiler, Zhang, LeCun & Fergus, 2013, "Regularization of
          Neural Networks using DropConnect", ICML.
    """

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        super().__init__(layer, **kwargs)
        self.rate = _checks.check_real("rate", rate, 0.0, 1.0, high_open=True)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return self.call_unchanged(inputs, training)
        kernel = ops.convert_to_tensor(self.kernel_owner.kernel)
        keep = keras.random.uniform(
            ops.shape(kernel), dtype="float32", seed=self.seed_generator
        ) >= self.rate
        scale = 1.0 / (1.0 - self.rate)
        kernel = ops.where(keep, kernel * ops.cast(scale, kernel.dtype), ops.zeros_like(kernel))
        return self.call_with_kernel(inputs, kernel, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
