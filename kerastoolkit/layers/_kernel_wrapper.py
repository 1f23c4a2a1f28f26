"""The base of the wrappers that replace a layer's kernel during its call.

`WeightNormalization`, `WeightNoise` and `DropConnect` run the wrapped layer
with another kernel (`g·v/‖v‖`, `v + noise`, `v·mask`) through the public
`Layer.stateless_call`: the wrapped layer's own `call` does the work (any
Dense or Conv layer, activation included), the substituted kernel is an
ordinary tensor, so gradients flow to the variables it was computed from, and
the layer's variables themselves are never overwritten.
"""

import keras


def _is_wrapper(layer):
    return isinstance(layer, keras.layers.Wrapper)


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

    def _check_kernel(self):
        kernel = getattr(self.layer, "kernel", None)
        if not isinstance(kernel, keras.Variable):
            raise ValueError(
                f"{type(self).__name__} wraps layers with a `kernel` weight "
                "(Dense, EinsumDense, Conv1D/2D/3D, ...). "
                f"{type(self.layer).__name__} has none. "
                f"Received: layer={self.layer.name!r}"
            )
        return kernel

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self._check_kernel()
        if self.layer.non_trainable_variables:
            raise ValueError(
                f"{type(self).__name__} runs the wrapped layer statelessly and "
                "would drop updates of its non-trainable state "
                f"({[v.name for v in self.layer.non_trainable_variables]}). "
                f"Received: layer={self.layer.name!r}"
            )
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def call_with_kernel(self, inputs, kernel, **replacements):
        """`layer(inputs)` with `kernel` (and e.g. `bias=`) in place of its own."""
        replace = {id(self.layer.kernel): kernel}
        for name, value in replacements.items():
            replace[id(getattr(self.layer, name))] = value
        trainable = [replace.get(id(v), v) for v in self.layer.trainable_variables]
        non_trainable = [
            replace.get(id(v), v) for v in self.layer.non_trainable_variables
        ]
        # The wrapped layer has no non-trainable state (checked in build).
        outputs, _ = self.layer.stateless_call(trainable, non_trainable, inputs)
        return outputs
