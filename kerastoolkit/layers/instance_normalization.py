"""Instance normalization (Ulyanov et al., 2017) as Keras's GroupNormalization."""

import keras


@keras.saving.register_keras_serializable(package="kerastoolkit")
class InstanceNormalization(keras.layers.GroupNormalization):
    """Instance normalization: each example's channels normalized on their own.

    For an input `x` of shape `(batch, *spatial, channels)` (channels on
    `axis`), every example `n` and channel `c` is normalized over its spatial
    positions, in training and at inference alike (no batch statistics, no
    moving averages):

    ```python
    μ[n, c] = mean(x[n, ..., c])              # over the spatial axes
    σ²[n, c] = mean((x[n, ..., c] - μ[n, c])²)  # biased
    y = gamma[c] · (x - μ[n, c]) / sqrt(σ²[n, c] + epsilon) + beta[c]
    ```

    This is exactly `keras.layers.GroupNormalization(groups=-1)` (one group
    per channel), which this class is: a registered specialisation with the
    group count fixed, so the saved config stays `groups`-free and the layer
    keeps meaning "instance norm" for any channel count. The arithmetic is
    Keras's (float32 even under `mixed_float16`). The input must have at
    least one spatial axis: on `(batch, channels)` each group holds a single
    value, its variance is 0 and the output would be `beta`.

    Args:
        axis: The channel axis. Defaults to `-1` (channels last).
        epsilon: Small float added to the variance. Defaults to `1e-3`
            (Keras's normalization default; the paper's code uses `1e-5`).
        center: Whether to add the learned offset `beta`. Defaults to `True`.
        scale: Whether to multiply by the learned scale `gamma`. Defaults to
            `True`.
        beta_initializer: Initializer of `beta`. Defaults to `"zeros"`.
        gamma_initializer: Initializer of `gamma`. Defaults to `"ones"`.
        beta_regularizer: Optional regularizer of `beta`. Defaults to `None`.
        gamma_regularizer: Optional regularizer of `gamma`. Defaults to
            `None`.
        beta_constraint: Optional constraint of `beta`. Defaults to `None`.
        gamma_constraint: Optional constraint of `gamma`. Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `groups` is passed (it is always one per channel).
        ValueError: at build, if the input has no spatial axis.

    Example:

    ```python
    import numpy as np
    import kerastoolkit as kt
    x = np.random.rand(2, 8, 8, 3).astype("float32")
    y = kt.layers.InstanceNormalization()(x)   # each image, each channel: mean 0
    ```

    References:
        - Ulyanov, Vedaldi & Lempitsky, 2017, "Improved Texture Networks:
          Maximizing Quality and Diversity in Feed-forward Stylization and
          Texture Synthesis", CVPR (arXiv:1701.02096).
        - Wu & He, 2018, "Group Normalization", arXiv:1803.08494 (G = C).
    """

    def __init__(self, axis=-1, epsilon=1e-3, **kwargs):
        if "groups" in kwargs:
            raise TypeError(
                "InstanceNormalization has no `groups` argument: it is "
                "GroupNormalization with one group per channel (use "
                "keras.layers.GroupNormalization for other group counts). "
                f"Received: groups={kwargs['groups']!r}"
            )
        super().__init__(groups=-1, axis=axis, epsilon=epsilon, **kwargs)

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                "InstanceNormalization normalizes over spatial axes and needs "
                "an input of rank >= 3 (batch, *spatial, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")  # always one group per channel
        return config
