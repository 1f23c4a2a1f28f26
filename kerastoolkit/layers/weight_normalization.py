"""Weight normalization (Salimans & Kingma, 2016) as a wrapper of Dense/Conv layers."""

import keras
from keras import ops

from kerastoolkit.layers._kernel_wrapper import KernelWrapper

_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_SUPPORTED = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
) + _TRANSPOSED


def _in_multi_replica_step():
    """True inside `strategy.run` with more than one replica (TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # inherently needed: the distribution context

    context = tf.distribute.get_replica_context()
    return context is not None and context.num_replicas_in_sync > 1


def _running_eagerly(x):
    """True outside `tf.function`/`jax.jit` tracing."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    return not _is_tracer(x)


def _is_tracer(x):
    if keras.backend.backend() != "jax":
        return False
    import jax

    return isinstance(x, jax.core.Tracer)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class WeightNormalization(KernelWrapper):
    """Reparameterizes a Dense or Conv kernel as a direction times a length.

    Every output unit `j` of the wrapped layer gets the weight vector

    ```python
    w_j = g_j · v_j / ‖v_j‖
    ```

    where `v` is the wrapped layer's own `kernel` (trained as before) and `g`
    is a new trainable vector, one length per output unit (filters for a
    convolution), created as `g_j = ‖v_j‖` so that a wrapped layer starts out
    computing what it computed before. The norm runs over every kernel axis
    except the output one (the last; the second to last for transposed
    convolutions). Bias and activation are the wrapped layer's.

    With `data_init=True` (the paper's data-dependent initialisation) the
    first call with `training=True` computes the pre-activations
    `t = v·x/‖v‖` on that batch, with per-unit mean `μ` and standard
    deviation `σ` (over the batch and spatial positions), and sets
    `g ← 1/σ` and `bias ← −μ/σ`, so the pre-activations of that first batch
    have zero mean and unit variance. A non-trainable flag `initialized`
    (saved with the layer) makes it happen once. Without a bias
    (`use_bias=False`) only `g` is set. Where it runs:
    - TensorFlow: inside `fit` (graph, XLA) or eagerly, on the first
      training batch. Under a multi-replica `tf.distribute` strategy a
      replica cannot write a mirrored weight during the step, so call
      `model(x_batch, training=True)` once inside `strategy.scope()` before
      `fit`; a training step that reaches an uninitialised layer there
      raises.
    - JAX: `fit` cannot write trainable weights from inside the jitted step;
      the init runs on the first *eager* training call, so call
      `model(x_batch, training=True)` once before `fit`. A jitted step on an
      uninitialised layer leaves `g` and the bias as they are (the layer
      then starts from the plain `g = ‖v‖` initialisation).

    Args:
        layer: A built or unbuilt `keras.layers.Dense`, `Conv1D/2D/3D` or
            `Conv1D/2D/3DTranspose` layer.
        data_init: Whether to run the data-dependent initialisation on the
            first training batch. Defaults to `True`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `layer` is not a Keras layer, or `data_init` not a bool.
        ValueError: if `layer` has no `kernel` or is not one of the
            supported classes.

    Example:

    ```python
    import numpy as np
    import keras
    import kerastoolkit as kt
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        kt.layers.WeightNormalization(keras.layers.Conv2D(8, 3, activation="relu")),
        keras.layers.Flatten(),
        kt.layers.WeightNormalization(keras.layers.Dense(10)),
    ])
    ```

    References:
        - Salimans & Kingma, 2016, "Weight Normalization: A Simple
          Reparameterization to Accelerate Training of Deep Neural Networks",
          NeurIPS (arXiv:1602.07868).
    """

    def __init__(self, layer, data_init=True, **kwargs):
        super().__init__(layer, **kwargs)
        if not isinstance(data_init, bool):
            raise TypeError(
                f"Argument `data_init` must be a bool. Received: data_init={data_init!r}"
            )
        if not isinstance(layer, _SUPPORTED):
            raise ValueError(
                "WeightNormalization needs a layer with a `kernel` whose "
                "output-unit axis it knows: Dense, Conv1D/2D/3D or "
                f"Conv1D/2D/3DTranspose. {type(layer).__name__} is not one of "
                f"them. Received: layer={layer.name!r}"
            )
        self.data_init = data_init
        self._initialized_eagerly = False

    def _output_axis(self):
        return -2 if isinstance(self.layer, _TRANSPOSED) else -1

    def _reduce_axes(self):
        ndim = len(self.layer.kernel.shape)
        out = self._output_axis() % ndim
        return [i for i in range(ndim) if i != out]

    def _unit_shape(self):
        shape = [1] * len(self.layer.kernel.shape)
        shape[self._output_axis()] = -1
        return shape

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = self.layer.kernel
        axes = self._reduce_axes()
        units = kernel.shape[self._output_axis()]

        def norm_of_kernel(shape, dtype=None):
            value = ops.cast(kernel.value, "float32")
            return ops.cast(ops.sqrt(ops.sum(ops.square(value), axis=axes)), dtype)

        self.g = self.add_weight(
            name="g", shape=(units,), initializer=norm_of_kernel,
            trainable=True, autocast=False,
        )
        self.initialized = self.add_weight(
            name="initialized", shape=(), initializer="zeros",
            trainable=False, autocast=False,
        )
        self.built = True

    def _direction(self):
        v = ops.cast(self.layer.kernel, "float32")
        norm = ops.sqrt(ops.sum(ops.square(v), axis=self._reduce_axes(), keepdims=True))
        return v / ops.maximum(norm, 1e-12)

    def _kernel(self, g):
        """`g·v/‖v‖` with one full-size multiply (the rest is per unit)."""
        v = ops.cast(self.layer.kernel, "float32")
        squared_norm = ops.sum(ops.square(v), axis=self._reduce_axes(), keepdims=True)
        g = ops.reshape(ops.cast(g, "float32"), self._unit_shape())
        return v * (g * ops.rsqrt(ops.maximum(squared_norm, 1e-24)))

    def _pre_activation_moments(self, inputs, direction):
        """Mean and variance per unit of `v·x/‖v‖` (no bias, no activation)."""
        replacements = {}
        if self.layer.bias is not None:
            replacements["bias"] = ops.zeros(self.layer.bias.shape, "float32")
        activation = self.layer.activation
        self.layer.activation = keras.activations.linear
        try:
            t = self.call_with_kernel(inputs, direction, **replacements)
        finally:
            self.layer.activation = activation
        t = ops.cast(t, "float32")
        channels_first = getattr(self.layer, "data_format", None) == "channels_first"
        unit_axis = 1 if channels_first else len(t.shape) - 1
        axes = [i for i in range(len(t.shape)) if i != unit_axis]
        return ops.moments(t, axes=axes)

    def _initialise(self, inputs, direction):
        """The paper's init; returns the new `(g, bias)` and writes them."""
        mean, variance = self._pre_activation_moments(inputs, direction)
        inv_std = ops.rsqrt(variance + 1e-6)
        g = ops.cast(inv_std, self.g.dtype)
        self.g.assign(g)
        bias = None
        if self.layer.bias is not None:
            bias = ops.cast(-mean * inv_std, self.layer.bias.dtype)
            self.layer.bias.assign(bias)
        self.initialized.assign(ops.ones((), self.initialized.dtype))
        if _running_eagerly(inputs):
            # Known done: later traced steps (fit) need no conditional.
            self._initialized_eagerly = True
        return g, bias

    def _current(self):
        bias = self.layer.bias
        if bias is not None:  # float32 even where autocast reads it as float16
            bias = ops.cast(bias, bias.dtype)
        return ops.convert_to_tensor(self.g), bias

    def call(self, inputs, training=None):
        g, bias = self._current()
        if training and self.data_init and not self._initialized_eagerly:
            direction = self._direction()
            if keras.backend.backend() == "jax":
                if not _is_tracer(inputs) and not bool(ops.convert_to_numpy(self.initialized)):
                    g, bias = self._initialise(inputs, direction)
            elif _in_multi_replica_step():
                import tensorflow as tf

                done = tf.debugging.assert_equal(
                    self.initialized.value, 1.0,
                    message=(
                        f"{self.name}: WeightNormalization(data_init=True) "
                        "cannot initialise inside a multi-replica step; call "
                        "model(x_batch, training=True) once inside "
                        "strategy.scope() before fit, or pass data_init=False."
                    ),
                )
                with tf.control_dependencies([done]):
                    g = tf.identity(g)
            else:
                if bias is None:
                    g = ops.cond(
                        self.initialized > 0.5,
                        lambda: g,
                        lambda: self._initialise(inputs, direction)[0],
                    )
                else:
                    g, bias = ops.cond(
                        self.initialized > 0.5,
                        lambda: (g, bias),
                        lambda: self._initialise(inputs, direction),
                    )
        kernel = self._kernel(g)
        if bias is None:
            return self.call_with_kernel(inputs, kernel)
        return self.call_with_kernel(inputs, kernel, bias=bias)

    def get_config(self):
        config = super().get_config()
        config["data_init"] = self.data_init
        return config
