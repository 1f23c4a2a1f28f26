"""The base of the wrappers that replace a layer's kernel during its call.

`WeightNormalization`, `WeightNoise` and `DropConnect` run the wrapped layer
with another kernel (`g·v/‖v‖`, `v + noise`, `v·mask`) through the public
`Layer.stateless_call`: the wrapped layer's own `call` does the work (any
Dense, Conv or recurrent layer, activation included), the substituted kernel
is an ordinary tensor, so gradients flow to the variables it was computed
from, and the layer's variables themselves are never overwritten.

A frozen wrapped layer (`trainable=False`, e.g. inside a transfer base) has
all its weights non-trainable; they are passed through unchanged. Random
state the wrapped layer advances during its call (the seed of a recurrent
layer's dropout) is written back after the call.
"""

import inspect

import keras
from keras import ops


def _is_wrapper(layer):
    return isinstance(layer, keras.layers.Wrapper)


def _accepts_training(layer):
    return "training" in inspect.signature(layer.call).parameters


class KernelWrapper(keras.layers.Wrapper):
    """Runs `layer` with its kernel replaced by `self.kernel_value(...)`."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"Argument `layer` must be a Keras layer with a `kernel` "
                f"(Dense, Conv...). Received: layer={layer!r}"
            )
        super().__init__(layer, **kwargs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the caller's dict.
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        return cls(layer, **config)

    @property
    def kernel_owner(self):
        """The layer holding the kernel: the cell of a recurrent layer, else `layer`."""
        if isinstance(self.layer, keras.layers.RNN):
            return self.layer.cell
        return self.layer

    def _check_kernel(self):
        kernel = getattr(self.kernel_owner, "kernel", None)
        if not isinstance(kernel, keras.Variable):
            raise ValueError(
                f"{type(self).__name__} wraps layers with a `kernel` weight "
                "(Dense, EinsumDense, Conv1D/2D/3D, SimpleRNN, GRU, LSTM, ...). "
                f"{type(self.layer).__name__} has none. "
                f"Received: layer={self.layer.name!r}"
            )
        return kernel

    def _check_no_statistics(self):
        # A trainable layer's non-trainable weights are statistics it updates
        # itself (moving means...), which a stateless call would drop. A
        # frozen layer's are its frozen weights, which nothing updates.
        if self.layer.trainable and self.layer.non_trainable_weights:
            raise ValueError(
                f"{type(self).__name__} runs the wrapped layer statelessly and "
                "would drop updates of its non-trainable weights "
                f"({[v.name for v in self.layer.non_trainable_weights]}). To "
                "freeze the wrapped layer, set `trainable=False` on the whole "
                f"layer. Received: layer={self.layer.name!r}"
            )

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self._check_kernel()
        self._check_no_statistics()
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, training=None):
        spec = self.layer.compute_output_spec(inputs)
        # `call` casts to the wrapper's compute dtype (as Bidirectional does).
        return keras.tree.map_structure(
            lambda s: keras.KerasTensor(s.shape, dtype=self.compute_dtype), spec
        )

    def _cast_outputs(self, outputs):
        return keras.tree.map_structure(
            lambda x: ops.cast(x, self.compute_dtype), outputs
        )

    def call_unchanged(self, inputs, training=None):
        """`layer(inputs)` with its own kernel, cast to the compute dtype."""
        kwargs = {"training": training} if _accepts_training(self.layer) else {}
        return self._cast_outputs(self.layer(inputs, **kwargs))

    def call_with_kernel(self, inputs, kernel, training=None, **replacements):
        """`layer(inputs)` with `kernel` (and e.g. `bias=`) in place of its own.

        `replacements` name other variables of the kernel's owner (e.g.
        `recurrent_kernel=`, `bias=`). The output is cast to the wrapper's
        compute dtype.
        """
        owner = self.kernel_owner
        replace = {id(owner.kernel): kernel}
        for name, value in replacements.items():
            replace[id(getattr(owner, name))] = value
        trainable = [replace.get(id(v), v) for v in self.layer.trainable_variables]
        non_trainable = [
            replace.get(id(v), v) for v in self.layer.non_trainable_variables
        ]
        kwargs = {"training": training} if _accepts_training(self.layer) else {}
        outputs, updated = self.layer.stateless_call(
            trainable, non_trainable, inputs, **kwargs
        )
        self._write_back_random_state(updated)
        return self._cast_outputs(outputs)

    def _write_back_random_state(self, updated):
        """Assigns the seed states the call advanced (never weights, frozen or not)."""
        weights = {id(w) for w in self.layer.weights}
        for variable, value in zip(self.layer.non_trainable_variables, updated):
            if id(variable) not in weights and value is not None:
                variable.assign(value)
