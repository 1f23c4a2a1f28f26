"""Filter Response Normalization and its Thresholded Linear Unit (Singh & Krishnan, 2020)."""

import keras
from keras import ops

from kerastoolkit import _checks


def _check_axis(axis):
    if not _checks.is_int(axis):
        raise TypeError(
            "Argument `axis` must be an int, the channel axis. "
            f"Received: axis={axis!r}"
        )
    return int(axis)


def _channel_axis(layer, input_shape):
    """The channel axis as a non-negative index, checked against `input_shape`."""
    rank = len(input_shape)
    axis = layer.axis + rank if layer.axis < 0 else layer.axis
    if not 1 <= axis < rank:
        raise ValueError(
            f"Argument `axis` must name a non-batch axis of the input of rank "
            f"{rank}. Received: axis={layer.axis}"
        )
    if input_shape[axis] is None:
        raise ValueError(
            f"The channel axis {layer.axis} of the input needs a known size. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return axis


def _per_channel(value, axis, rank):
    """Reshapes a `(channels,)` weight to broadcast along `axis`."""
    shape = [1] * rank
    shape[axis] = -1
    return ops.reshape(value, shape)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class FilterResponseNormalization(keras.layers.Layer):
    """Filter Response Normalization: each example's channels scaled by their RMS.

    For an input `x` of shape `(batch, *spatial, channels)` (channels on
    `axis`), every example `b` and channel `c` is divided by the root mean
    square of its responses over the spatial positions (Eq. 1-3 of the
    paper), in training and at inference alike:

    ```python
    ν²[b, c] = mean(x[b, ..., c]²)              # over the N spatial positions
    x̂ = x / sqrt(ν²[b, c] + ε)
    y = gamma[c] · x̂ + beta[c]
    ```

    No mean is subtracted and no batch statistic is used: an example's
    output does not depend on the other examples in the batch, so FRN
    behaves the same for any batch size (the paper's point) and has no
    moving averages. Follow it with `kt.layers.TLU` (the paper's
    thresholded ReLU, `max(y, τ)`): without centering, a plain ReLU after
    FRN can leave units dead. With `learned_epsilon=True`, `ε = epsilon +
    |ε_l|` with a trainable scalar `ε_l` (initialized to `1e-4`), the
    paper's fix for inputs with few spatial positions (`N = 1` for a
    `(batch, channels)` input, where `x̂ ≈ sign(x)` with a fixed tiny `ε`).
    Computed in float32 under `mixed_float16` (the squares of float16
    activations overflow past 256).

    Args:
        axis: The channel axis; every axis except the batch and this one is
            normalized over. Defaults to `-1` (channels last). (tfa's
            `axis=[1, 2]` listed the spatial axes instead.)
        epsilon: A float >= 0, `ε`, or its lower bound with
            `learned_epsilon`. Defaults to `1e-6`, the paper's value.
        learned_epsilon: Whether `ε` also has a trainable part. Defaults to
            `False`.
        beta_initializer: Initializer of `beta`. Defaults to `"zeros"`.
        gamma_initializer: Initializer of `gamma`. Defaults to `"ones"`.
        beta_regularizer: Optional regularizer of `beta`. Defaults to `None`.
        gamma_regularizer: Optional regularizer of `gamma`. Defaults to
            `None`.
        beta_constraint: Optional constraint of `beta`. Defaults to `None`.
        gamma_constraint: Optional constraint of `gamma`. Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `axis` is not an int or `learned_epsilon` not a bool.
        ValueError: if `epsilon` is negative or NaN, `epsilon == 0` without
            `learned_epsilon`, or (at build) `axis` is not a non-batch axis
            of the input or its size is unknown.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        kt.layers.FilterResponseNormalization(),
        kt.layers.TLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    ```

    References:
        - Singh & Krishnan, 2020, "Filter Response Normalization Layer:
          Eliminating Batch Dependence in the Training of Deep Neural
          Networks", CVPR (arXiv:1911.09737).
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-6,
        learned_epsilon=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = _check_axis(axis)
        self.epsilon = _checks.check_real("epsilon", epsilon, low=0.0)
        if not isinstance(learned_epsilon, bool):
            raise TypeError(
                "Argument `learned_epsilon` must be a bool. "
                f"Received: learned_epsilon={learned_epsilon!r}"
            )
        if self.epsilon == 0.0 and not learned_epsilon:
            raise ValueError(
                "Argument `epsilon` must be > 0 unless `learned_epsilon=True`: "
                "an all-zero channel would divide by 0. Received: epsilon=0.0"
            )
        self.learned_epsilon = learned_epsilon
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        # The weights stay float32 under mixed precision (see `call`).
        self.autocast = False

    def build(self, input_shape):
        axis = _channel_axis(self, input_shape)
        channels = input_shape[axis]
        self.input_spec = keras.layers.InputSpec(
            ndim=len(input_shape), axes={axis: channels}
        )
        self.gamma = self.add_weight(
            shape=(channels,), name="gamma", initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
            autocast=False,
        )
        self.beta = self.add_weight(
            shape=(channels,), name="beta", initializer=self.beta_initializer,
            regularizer=self.beta_regularizer, constraint=self.beta_constraint,
            autocast=False,
        )
        self.learned_epsilon_weight = None
        if self.learned_epsilon:
            self.learned_epsilon_weight = self.add_weight(
                shape=(), name="learned_epsilon",
                initializer=keras.initializers.Constant(1e-4), autocast=False,
            )

    def call(self, inputs):
        rank = len(inputs.shape)
        axis = self.axis + rank if self.axis < 0 else self.axis
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        reduce = [i for i in range(1, rank) if i != axis]
        nu2 = ops.mean(ops.square(x), axis=reduce, keepdims=True) if reduce else ops.square(x)
        epsilon = ops.cast(self.epsilon, dtype)
        if self.learned_epsilon_weight is not None:
            epsilon = ops.add(epsilon, ops.abs(ops.cast(self.learned_epsilon_weight, dtype)))
        normalized = ops.multiply(x, ops.rsqrt(ops.add(nu2, epsilon)))
        gamma = _per_channel(ops.cast(self.gamma, dtype), axis, rank)
        beta = _per_channel(ops.cast(self.beta, dtype), axis, rank)
        outputs = ops.add(ops.multiply(normalized, gamma), beta)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "epsilon": self.epsilon,
            "learned_epsilon": self.learned_epsilon,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        })
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class TLU(keras.layers.Layer):
    """Thresholded Linear Unit: a ReLU with a learned threshold per channel.

    Eq. 4 of Singh & Krishnan (2020), the activation that follows
    `FilterResponseNormalization`:

    ```python
    z = max(y, tau[c])       # = ReLU(y − tau) + tau
    ```

    `tau` is one trainable threshold per channel (on `axis`), as in the
    paper. (tfa's `TLU` learned one `tau` per element of the input shape:
    its weights do not load into this layer; tfa's `affine=True` variant
    `max(y, α·y + τ)` is not in the paper and not offered.)

    Args:
        axis: The channel axis. Defaults to `-1` (channels last).
        tau_initializer: Initializer of `tau`. Defaults to `"zeros"` (a
            ReLU at initialization).
        tau_regularizer: Optional regularizer of `tau`. Defaults to `None`.
        tau_constraint: Optional constraint of `tau`. Defaults to `None`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `axis` is not an int.
        ValueError: at build, if `axis` is not a non-batch axis of the input
            or its size is unknown.

    Example:

    ```python
    import numpy as np
    import kerastoolkit as kt
    y = kt.layers.TLU()(np.array([[-1.0, 2.0]], "float32"))   # [[0., 2.]]
    ```

    References:
        - Singh & Krishnan, 2020, "Filter Response Normalization Layer:
          Eliminating Batch Dependence in the Training of Deep Neural
          Networks", CVPR (arXiv:1911.09737), Eq. 4.
    """

    def __init__(self, axis=-1, tau_initializer="zeros", tau_regularizer=None,
                 tau_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = _check_axis(axis)
        self.tau_initializer = keras.initializers.get(tau_initializer)
        self.tau_regularizer = keras.regularizers.get(tau_regularizer)
        self.tau_constraint = keras.constraints.get(tau_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        axis = _channel_axis(self, input_shape)
        channels = input_shape[axis]
        self.input_spec = keras.layers.InputSpec(
            ndim=len(input_shape), axes={axis: channels}
        )
        self.tau = self.add_weight(
            shape=(channels,), name="tau", initializer=self.tau_initializer,
            regularizer=self.tau_regularizer, constraint=self.tau_constraint,
        )

    def call(self, inputs):
        rank = len(inputs.shape)
        axis = self.axis + rank if self.axis < 0 else self.axis
        tau = _per_channel(ops.cast(self.tau, inputs.dtype), axis, rank)
        return ops.maximum(inputs, tau)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "tau_initializer": keras.initializers.serialize(self.tau_initializer),
            "tau_regularizer": keras.regularizers.serialize(self.tau_regularizer),
            "tau_constraint": keras.constraints.serialize(self.tau_constraint),
        })
        return config
