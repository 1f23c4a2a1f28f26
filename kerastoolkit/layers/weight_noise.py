"""Additive Gaussian noise on a layer's weights during training."""

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.layers._kernel_wrapper import KernelWrapper
from kerastoolkit.layers._random import check_seed


@keras.saving.register_keras_serializable(package="kerastoolkit")
class WeightNoise(KernelWrapper):
    """Adds fresh Gaussian noise to a layer's kernel at every training call.

    In training the wrapped layer runs with

    ```python
    W̃ = W + ε,   ε ~ N(0, stddev²) i.i.d., drawn anew at every call
    ```

    in place of its kernel `W` (the bias is not perturbed); gradients flow to
    `W` as if `ε` were a constant. At inference (`training=False`) the layer
    runs with `W` unchanged. This is the lecture's "noise on the weights"
    regulariser (Graves, 2011; An, 1996), the weight-space counterpart of
    `keras.layers.GaussianNoise` on activations. One noise draw is shared by
    the whole batch. Under `tf.distribute` each replica draws its own noise.

    Args:
        layer: A Keras layer with a `kernel` weight (Dense, Conv...).
        stddev: Standard deviation of the noise, >= 0 (0 disables it).
            Defaults to `0.01`.
        seed: Integer seed of a `keras.random.SeedGenerator`, or `None`.
            Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `layer` is not a Keras layer, or `stddev`/`seed` have
            the wrong type.
        ValueError: if `stddev` is negative, or (at build) the layer has no
            `kernel`.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    layer = kt.layers.WeightNoise(keras.layers.Dense(64), stddev=0.05, seed=1)
    ```

    References:
        - Graves, 2011, "Practical Variational Inference for Neural
          Networks", NeurIPS.
        - An, 1996, "The Effects of Adding Noise During Backpropagation
          Training on a Generalization Performance", Neural Computation 8(3).
    """

    def __init__(self, layer, stddev=0.01, seed=None, **kwargs):
        super().__init__(layer, **kwargs)
        self.stddev = _checks.check_real("stddev", stddev, 0.0)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.stddev == 0.0:
            return self.call_unchanged(inputs, training)
        kernel = ops.convert_to_tensor(self.kernel_owner.kernel)
        noise = keras.random.normal(
            ops.shape(kernel), stddev=self.stddev, dtype=kernel.dtype,
            seed=self.seed_generator,
        )
        return self.call_with_kernel(inputs, kernel + noise, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config
