"""`Standardize`: centring (and scaling) by statistics saved from the training set."""

import itertools

import keras
import numpy as np

MODES = ("per_channel", "mean_image")


def _batches(data, batch_size):
    """Yields NumPy batches of inputs from an array, a dataset or an iterable."""
    if isinstance(data, np.ndarray) or keras.ops.is_tensor(data):
        data = keras.ops.convert_to_numpy(data) if not isinstance(data, np.ndarray) else data
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise TypeError(
            "Argument `data` must be an array, a `tf.data.Dataset` or an iterable of "
            f"batches. Received: data={type(data).__name__}"
        )
    for batch in data:
        if isinstance(batch, (tuple, list)):  # (x, y) or (x, y, sample_weight)
            batch = batch[0]
        yield np.asarray(batch)


def _read_eagerly(variable):
    """The variable's value as a float, also while TensorFlow traces a function; `None` if unreadable."""
    try:
        return float(keras.ops.convert_to_numpy(variable))
    except Exception:  # noqa: BLE001  (traced: a graph tensor or a JAX tracer)
        pass
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():  # out of the tf.function being traced
            return float(variable.numpy())
    return None


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Standardize(keras.layers.Layer):
    """Subtracts the training set's mean (per channel or the mean image), optionally divides by its std.

    `y = (x − μ) / σ` (or `y = x − μ` with `scale=False`), where, over the
    training inputs seen by `adapt()`:

    - `mode="per_channel"`: `μ_c` is the mean of channel `c` over all
      examples and positions, `σ_c` its standard deviation;
    - `mode="mean_image"`: `μ[i, j, c]` is the mean image (every position and
      channel has its own mean), `σ_c` the per-channel standard deviation of
      the centred data, `sqrt(mean_(i,j) Var[x_(i,j,c)])`. One `σ` per
      channel, not per pixel: a pixel that is nearly constant in the
      training set (the black border of Fashion-MNIST) is not blown up.

    `σ` is floored at `epsilon`. The statistics are layer weights
    (non-trainable), so they travel with `model.save(...)`, `.keras` files
    and `model.export(...)`: the same transformation runs at test time and
    inside the SavedModel. The layer casts its input to its compute dtype
    first, so a model can take raw `uint8` images.

    `adapt(data)` streams: batch by batch it merges the batch's count, mean
    and sum of squared deviations into running ones with Chan et al.'s
    parallel update `M2 = M2_a + M2_b + δ²·n_a·n_b/n`, in float64, so a
    dataset larger than memory is never loaded whole and the result equals
    the statistics of the whole array.

    Compared with `keras.layers.Normalization`: `Normalization(axis=-1)`
    already standardizes per channel (and also streams over a dataset).
    `Standardize` adds centring without scaling (`scale=False`), the mean
    image with a per-channel `σ` (`Normalization(axis=(1, 2, 3))` divides
    each pixel by its own `σ`), float64 accumulation, and an error when it is
    used before `adapt()` (`Normalization` silently uses mean 0, variance 1;
    the check runs eagerly and in TensorFlow-traced functions, not inside a
    JAX-traced `predict`).

    Args:
        mode: `"per_channel"` or `"mean_image"`. Defaults to `"per_channel"`.
        scale: divide by the standard deviation. Defaults to `True`.
        epsilon: floor of `σ`. Defaults to `1e-6`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
        ValueError: for an unknown `mode`, a negative `epsilon`, a call
            before `adapt()`, or data whose shape differs from the layer's.

    Example:
    >>> x_train, _ = kt.data.load("digits", as_numpy=True)
    >>> standardize = kt.layers.Standardize("mean_image")
    >>> standardize.adapt(x_train)
    >>> inputs = keras.Input((8, 8, 1))
    >>> model = keras.Model(inputs, keras.layers.Flatten()(standardize(inputs)))

    References:
        Chan, Golub, LeVeque, Updating formulae and a pairwise algorithm for
        computing sample variances, 1979. Krizhevsky et al., ImageNet
        classification with deep convolutional neural networks, 2012 (mean
        image).
    """

    def __init__(self, mode="per_channel", scale=True, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"Argument `mode` must be one of {', '.join(repr(m) for m in MODES)}. "
                f"Received: mode={mode!r}"
            )
        if not isinstance(scale, bool):
            raise TypeError(f"Argument `scale` must be a bool. Received: scale={scale!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
            raise ValueError(f"Argument `epsilon` must be a number >= 0. Received: epsilon={epsilon!r}")
        self.mode = mode
        self.scale = scale
        self.epsilon = float(epsilon)
        self._adapted = False
        self.supports_masking = True

    def _stat_shapes(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "Standardize needs inputs of shape (batch, ..., channels) with a known "
                f"channel count. Received: input_shape={tuple(input_shape)}"
            )
        if self.mode == "mean_image" and any(d is None for d in input_shape[1:]):
            raise ValueError(
                "mode='mean_image' needs fully known example shapes. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        channels = (int(input_shape[-1]),)
        if self.mode == "mean_image":
            return tuple(int(d) for d in input_shape[1:]), channels
        return channels, channels

    def build(self, input_shape):
        mean_shape, std_shape = self._stat_shapes(input_shape)
        self.mean = self.add_weight(
            name="mean", shape=mean_shape, initializer="zeros", trainable=False, dtype="float32"
        )
        self.std = self.add_weight(
            name="std", shape=std_shape, initializer="ones", trainable=False, dtype="float32"
        )
        self.count = self.add_weight(
            name="count", shape=(), initializer="zeros", trainable=False, dtype="float32"
        )

    def adapt(self, data, batch_size=1024):
        """Computes the statistics from training inputs, streamed batch by batch.

        Args:
            data: a NumPy array or tensor of inputs `(n, ..., channels)`, a
                batched `tf.data.Dataset` (of inputs, or of `(x, y, ...)`
                tuples whose `x` is used), or any iterable of such batches.
            batch_size: rows per step when `data` is an array. Defaults to
                `1024`.

        Returns:
            The layer.

        Raises:
            ValueError: for empty data or batches of another shape.
            TypeError: for data that is not an array or an iterable.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
            )
        n = 0
        mean = m2 = None  # per position and channel
        batches = _batches(data, batch_size)
        first = next(batches, None)
        if first is None:
            raise ValueError("Standardize.adapt() received no data. Received: data=<empty>")
        example_shape = tuple(first.shape[1:])
        if self.built:
            built_shape = tuple(self.mean.shape) if self.mode == "mean_image" else None
            if example_shape[-1] != self.std.shape[0] or (built_shape and built_shape != example_shape):
                raise ValueError(
                    "adapt() data does not match the shape the layer was built with. "
                    f"Received: data.shape={(None,) + example_shape}"
                )
        else:
            self.build((None,) + example_shape)
        for batch in itertools.chain([first], batches):
            if tuple(batch.shape[1:]) != example_shape:
                raise ValueError(
                    "Every adapt() batch must have the same example shape, "
                    f"{example_shape}. Received: batch.shape={tuple(batch.shape)}"
                )
            batch = batch.astype(np.float64)
            n_b = batch.shape[0]
            if n_b == 0:
                continue
            mean_b = batch.mean(axis=0)
            m2_b = ((batch - mean_b) ** 2).sum(axis=0)
            if mean is None:
                n, mean, m2 = n_b, mean_b, m2_b
                continue
            total = n + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (n * n_b / total)
            n = total
        if not n:
            raise ValueError("Standardize.adapt() received no examples. Received: data=<empty>")
        # Per position and channel: n examples, mean, M2. Merge the positions
        # (each has n values) into per-channel statistics.
        channels = mean.shape[-1]
        flat_mean = mean.reshape(-1, channels)
        flat_m2 = m2.reshape(-1, channels)
        positions = flat_mean.shape[0]
        channel_mean = flat_mean.mean(axis=0)
        if self.mode == "mean_image":
            stat_mean = mean
            variance = flat_m2.sum(axis=0) / (n * positions)  # of x − mean image
        else:
            stat_mean = channel_mean
            spread = ((flat_mean - channel_mean) ** 2).sum(axis=0) * n
            variance = (flat_m2.sum(axis=0) + spread) / (n * positions)
        std = np.maximum(np.sqrt(variance), self.epsilon)
        self.mean.assign(stat_mean.astype("float32"))
        self.std.assign(std.astype("float32"))
        self.count.assign(float(n))
        self._adapted = True
        return self

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self._adapted = float(keras.ops.convert_to_numpy(self.count)) > 0

    def _check_adapted(self, inputs):
        if self._adapted or isinstance(inputs, keras.KerasTensor):
            return
        count = _read_eagerly(self.count)
        if count is None:  # traced by JAX: the weights cannot be read here
            return
        self._adapted = count > 0
        if not self._adapted:
            raise ValueError(
                f"Standardize layer {self.name!r} is used before adapt(): call "
                "`layer.adapt(training_inputs)` first (its statistics are still unset). "
                "Received: count=0"
            )

    def call(self, inputs):
        self._check_adapted(inputs)
        x = keras.ops.cast(inputs, self.compute_dtype)
        x = x - keras.ops.cast(self.mean, self.compute_dtype)
        if self.scale:
            x = x / keras.ops.cast(self.std, self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "scale": self.scale, "epsilon": self.epsilon})
        return config
