"""Weight normalization (Salimans & Kingma, 2016) as a wrapper of Dense/Conv layers."""

import keras
from keras import ops

from kerastoolkit.layers._kernel_wrapper import KernelWrapper

_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_RECURRENT = (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)
_SUPPORTED = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
) + _TRANSPOSED + _RECURRENT


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
    """Reparameterizes a Dense, Conv or recurrent kernel as a direction times a length.

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

    Recurrent layers (`SimpleRNN`, `GRU`, `LSTM`) get the same
    reparameterization of both their input kernel (`g`) and their recurrent
    kernel (`recurrent_g`), one length per column (per gate unit). `Conv1D`
    (causal or dilated, as in temporal convolutional networks) is a
    convolution like the others.

    With `data_init=True` (the paper's data-dependent initialisation) the
    first call with `training=True` computes the pre-activations
    `t = v·x/‖v‖` on that batch, with per-unit mean `μ` and standard
    deviation `σ` (over the batch and spatial positions), and sets
    `g ← 1/σ` and `bias ← −μ/σ`, so the pre-activations of that first batch
    have zero mean and unit variance. The init happens before the step: the
    same call then computes the normal forward pass from the assigned `g`
    and bias, so the first training step differentiates it with respect to
    `v`, `g` and `b` as the paper does. A non-trainable flag `initialized`
    (saved with the layer) makes it happen once. Without a bias
    (`use_bias=False`) only `g` is set. A frozen layer (the wrapper or the
    wrapped layer `trainable=False`) is not initialised: its weights stay as
    they are. The paper defines the init for feed-forward layers only, so
    recurrent layers need `data_init=False`. Where it runs:
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

    For serving, `remove()` gives the plain wrapped layer with the kernel
    `g·v/‖v‖` folded in, and `kt.layers.remove_weight_normalization(model)`
    does it for every wrapper of a model.

    Args:
        layer: A built or unbuilt `keras.layers.Dense`, `Conv1D/2D/3D`,
            `Conv1D/2D/3DTranspose`, `SimpleRNN`, `GRU` or `LSTM` layer.
        data_init: Whether to run the data-dependent initialisation on the
            first training batch (`False` is required for recurrent
            layers). Defaults to `True`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Raises:
        TypeError: if `layer` is not a Keras layer, or `data_init` not a bool.
        ValueError: if `layer` has no `kernel` or is not one of the
            supported classes, or `data_init=True` with a recurrent layer.

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
    serving = kt.layers.remove_weight_normalization(model)  # plain Conv2D, Dense
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
                "output-unit axis it knows: Dense, Conv1D/2D/3D, "
                "Conv1D/2D/3DTranspose, SimpleRNN, GRU or LSTM. "
                f"{type(layer).__name__} is not one of them. Received: "
                f"layer={layer.name!r}"
            )
        if data_init and isinstance(layer, _RECURRENT):
            raise ValueError(
                "WeightNormalization's data-dependent init is defined for "
                "feed-forward layers (Salimans & Kingma, section 3); pass "
                f"data_init=False for the recurrent layer {layer.name!r}. "
                f"Received: data_init={data_init}"
            )
        self.data_init = data_init
        self._initialized_eagerly = False

    @property
    def recurrent(self):
        """Whether the wrapped layer is recurrent (its recurrent kernel is normalized too)."""
        return isinstance(self.layer, _RECURRENT)

    def _output_axis(self):
        return -2 if isinstance(self.layer, _TRANSPOSED) else -1

    def _reduce_axes(self, kernel):
        ndim = len(kernel.shape)
        out = self._output_axis() % ndim
        return [i for i in range(ndim) if i != out]

    def _unit_shape(self, kernel):
        shape = [1] * len(kernel.shape)
        shape[self._output_axis()] = -1
        return shape

    def _add_length(self, name, kernel):
        axes = self._reduce_axes(kernel)

        def norm_of_kernel(shape, dtype=None):
            value = ops.cast(kernel.value, "float32")
            return ops.cast(ops.sqrt(ops.sum(ops.square(value), axis=axes)), dtype)

        return self.add_weight(
            name=name, shape=(kernel.shape[self._output_axis()],),
            initializer=norm_of_kernel, trainable=True, autocast=False,
        )

    def build(self, input_shape=None):
        super().build(input_shape)
        owner = self.kernel_owner
        self.g = self._add_length("g", owner.kernel)
        if self.recurrent:
            self.recurrent_g = self._add_length("recurrent_g", owner.recurrent_kernel)
        self.initialized = self.add_weight(
            name="initialized", shape=(), initializer="zeros",
            trainable=False, autocast=False,
        )
        self.built = True

    def _direction(self):
        v = ops.cast(self.kernel_owner.kernel, "float32")
        norm = ops.sqrt(ops.sum(ops.square(v), axis=self._reduce_axes(v), keepdims=True))
        return v / ops.maximum(norm, 1e-12)

    def _kernel(self, g, kernel=None):
        """`g·v/‖v‖` with one full-size multiply (the rest is per unit)."""
        v = ops.cast(self.kernel_owner.kernel if kernel is None else kernel, "float32")
        squared_norm = ops.sum(ops.square(v), axis=self._reduce_axes(v), keepdims=True)
        g = ops.reshape(ops.cast(g, "float32"), self._unit_shape(v))
        return v * (g * ops.rsqrt(ops.maximum(squared_norm, 1e-24)))

    def _pre_activation_moments(self, inputs, direction):
        """Mean and variance per unit of `v·x/‖v‖` (no bias, no activation)."""
        replacements = {}
        if self.layer.bias is not None:  # Dense and Conv only (no recurrent init)
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
        """The paper's init: writes `g`, the bias and the flag; returns 1."""
        mean, variance = self._pre_activation_moments(inputs, direction)
        inv_std = ops.rsqrt(variance + 1e-6)
        self.g.assign(ops.cast(inv_std, self.g.dtype))
        if self.layer.bias is not None:
            self.layer.bias.assign(ops.cast(-mean * inv_std, self.layer.bias.dtype))
        self.initialized.assign(ops.ones((), self.initialized.dtype))
        if _running_eagerly(inputs):
            # Known done: later traced steps (fit) need no conditional.
            self._initialized_eagerly = True
        return ops.ones((), "float32")

    def _data_init(self, inputs):
        """Runs the init if the flag says it has not run (where it can)."""
        direction = self._direction()
        if keras.backend.backend() == "jax":
            if not _is_tracer(inputs) and not bool(ops.convert_to_numpy(self.initialized)):
                self._initialise(inputs, direction)
        elif _in_multi_replica_step():
            import tensorflow as tf

            tf.debugging.assert_equal(
                self.initialized.value, 1.0,
                message=(
                    f"{self.name}: WeightNormalization(data_init=True) "
                    "cannot initialise inside a multi-replica step; call "
                    "model(x_batch, training=True) once inside "
                    "strategy.scope() before fit, or pass data_init=False."
                ),
            )
        else:
            ops.cond(
                self.initialized > 0.5,
                lambda: ops.zeros((), "float32"),
                lambda: self._initialise(inputs, direction),
            )

    def _needs_init(self, training):
        return (
            bool(training) and self.data_init and self.trainable
            and self.layer.trainable and not self._initialized_eagerly
        )

    def call(self, inputs, training=None):
        if self._needs_init(training):
            self._data_init(inputs)
        # `g` and the bias are read after the init's assignments (TensorFlow
        # orders them), so the gradient reaches the variables themselves.
        replacements = {}
        if self.recurrent:
            replacements["recurrent_kernel"] = self._kernel(
                self.recurrent_g, self.kernel_owner.recurrent_kernel
            )
        return self.call_with_kernel(
            inputs, self._kernel(self.g), training=training, **replacements
        )

    def remove(self):
        """The wrapped layer alone, with the kernel `g·v/‖v‖` folded in.

        Returns a new layer of the wrapped layer's class and config whose
        weights are the wrapped layer's, except the kernel (and the
        recurrent kernel of a recurrent layer), set to `g·v/‖v‖`. It computes
        what the wrapper computes at inference, without the
        reparameterization: the layer to serve. The wrapper is unchanged.

        Returns:
            A built layer of the wrapped layer's class.

        Raises:
            ValueError: if the wrapper is not built.
        """
        if not self.built:
            raise ValueError(
                "WeightNormalization.remove() needs a built wrapper (call it on "
                f"data or build it first). Received: layer={self.name!r}"
            )
        owner = self.kernel_owner
        folded = {id(owner.kernel): self._kernel(self.g)}
        if self.recurrent:
            folded[id(owner.recurrent_kernel)] = self._kernel(
                self.recurrent_g, owner.recurrent_kernel
            )
        plain = type(self.layer).from_config(self.layer.get_config())
        plain.build_from_config(self.layer.get_build_config())
        plain.set_weights([
            ops.convert_to_numpy(folded.get(id(w), w)) for w in self.layer.weights
        ])
        return plain

    def get_config(self):
        config = super().get_config()
        config["data_init"] = self.data_init
        return config


def remove_weight_normalization(model):
    """A copy of `model` with every `WeightNormalization` folded into its layer.

    Each wrapper is replaced by `wrapper.remove()`: the plain Dense, Conv or
    recurrent layer with the kernel `g·v/‖v‖`. The other layers are copies
    with the same weights (nested Sequential and functional models
    included), so the returned model gives `model`'s outputs at inference,
    has nothing of the toolkit left in its weight normalization layers, and
    shares no variable with `model`.

    Args:
        model: A functional or Sequential `keras.Model`.

    Returns:
        A new `keras.Model` (uncompiled).

    Raises:
        TypeError: if `model` is not a functional or Sequential model.

    Example:

    ```python
    serving = kt.layers.remove_weight_normalization(trained)
    serving.export("savedmodels/plain")
    ```
    """
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise TypeError(
            "Argument `model` must be a functional or Sequential keras.Model. "
            f"Received: model={model!r}"
        )

    def plain_copy(layer):
        if isinstance(layer, WeightNormalization):
            return layer.remove()
        copy = type(layer).from_config(layer.get_config())
        if layer.weights:
            copy.build_from_config(layer.get_build_config())
            copy.set_weights(layer.get_weights())
        return copy

    return keras.models.clone_model(model, clone_function=plain_copy, recursive=True)
