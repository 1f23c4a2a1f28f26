"""Ghost batch normalization (Hoffer et al., 2017)."""

import math

import keras
from keras import ops

from kerastoolkit import _checks


@keras.saving.register_keras_serializable(package="kerastoolkit")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization with statistics over small virtual ("ghost") batches.

    In training, the batch is cut into consecutive ghost batches of
    `virtual_batch_size` examples and each ghost batch `g` is normalized with
    its own statistics (over its examples and all non-channel axes):

    ```python
    μ_g = mean(x[g]),  σ²_g = mean((x[g] - μ_g)²)        # biased, per channel
    y = gamma · (x - μ_g) / sqrt(σ²_g + epsilon) + beta
    moving_mean     ← momentum · moving_mean     + (1 - momentum) · Σ_g n_g μ_g  / n
    moving_variance ← momentum · moving_variance + (1 - momentum) · Σ_g n_g σ²_g / n
    ```

    (`n_g` examples in ghost batch `g`, `n` in the batch: the moving
    averages follow the example-weighted mean of the ghost statistics, which
    is the mean of the ghost means and of the ghost variances when the ghost
    batches are equal, as in `tf.compat.v1` batch norm's
    `virtual_batch_size`.) At inference (`training=False`, or the layer
    frozen) it is exactly `keras.layers.BatchNormalization`: the moving
    statistics, which are inherited variables with the same names, so a
    trained model can swap the layer class without touching its weights.

    **Batches that `virtual_batch_size` does not divide.** The last batch of
    an epoch is usually smaller. A batch of `B` examples makes
    `max(B // virtual_batch_size, 1)` ghost batches, and the remainder
    (`B mod virtual_batch_size` examples) joins the last of them, so every
    ghost batch has between `virtual_batch_size` and
    `2·virtual_batch_size − 1` examples and no example is normalized with the
    statistics of a tiny group; a batch smaller than `virtual_batch_size` is
    one ghost batch (plain batch norm). Any batch size therefore trains, with
    no error at run time; the tf-keras 2 behaviour (an error when the batch is
    not a multiple) made the last batch of an epoch fail.

    Args:
        virtual_batch_size: Integer >= 1, the examples per ghost batch. The
            paper uses 32-128 with large batches. Defaults to `32`.
        axis: The channel axis. Defaults to `-1`.
        momentum: Momentum of the moving averages. Defaults to `0.99`.
        epsilon: Small float added to the variance. Defaults to `1e-3`.
        **kwargs: The other `keras.layers.BatchNormalization` arguments
            (`center`, `scale`, initializers, regularizers, constraints,
            `name`, `dtype`), except `renorm` and `synchronized`.

    Raises:
        TypeError: if `virtual_batch_size` is not an integer.
        ValueError: if `virtual_batch_size < 1`, if `renorm=True` or
            `synchronized=True` (ghost batches are per replica by design), or
            if a mask is passed.

    Example:

    ```python
    import numpy as np
    import keras
    import kerastoolkit as kt
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32),
        kt.layers.GhostBatchNormalization(virtual_batch_size=16),
        keras.layers.ReLU(),
        keras.layers.Dense(10),
    ])
    ```

    References:
        - Hoffer, Hubara & Soudry, 2017, "Train longer, generalize better:
          closing the generalization gap in large batch training of neural
          networks", NeurIPS (arXiv:1705.08741).
    """

    def __init__(self, virtual_batch_size=32, axis=-1, momentum=0.99, epsilon=1e-3, **kwargs):
        virtual_batch_size = _checks.check_int("virtual_batch_size", virtual_batch_size, 1)
        for name in ("renorm", "synchronized"):
            if kwargs.get(name):
                raise ValueError(
                    f"GhostBatchNormalization does not support `{name}=True` "
                    "(ghost statistics are per replica and per ghost batch). "
                    f"Received: {name}={kwargs[name]!r}"
                )
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon, **kwargs)
        self.virtual_batch_size = virtual_batch_size

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(
                "GhostBatchNormalization does not support masks. "
                f"Received: mask with shape {tuple(mask.shape)}"
            )
        if not (training and self.trainable):
            return super().call(inputs, training=False)

        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        ndim = len(x.shape)
        channel_axis = self.axis % ndim
        channels = x.shape[channel_axis]
        param_shape = [1] * ndim
        param_shape[channel_axis] = channels
        gamma = ops.reshape(ops.cast(self.gamma, x.dtype), param_shape) if self.scale else None
        beta = ops.reshape(ops.cast(self.beta, x.dtype), param_shape) if self.center else None

        vbs = self.virtual_batch_size
        batch = x.shape[0]
        if batch is not None:  # static (eager, JAX, fixed-shape XLA)
            if batch % vbs == 0:
                outputs, mean, var = self._equal_ghosts(x, gamma, beta)
            else:
                outputs, mean, var = self._merged_remainder(x, gamma, beta)
        else:
            # A batch size known only at run time (a `fit` retraced for its
            # smaller last batch): the one-hot path, valid for every size. A
            # `cond` between the two paths fails under XLA, which compiles
            # both branches for the actual size, and the ghost-batch reshape
            # does not compile for a size `virtual_batch_size` does not
            # divide; the one-hot path is no slower (benchmarks/layers.py).
            outputs, mean, var = self._merged_remainder(x, gamma, beta)
        self.moving_mean.assign(
            ops.cast(self.moving_mean, x.dtype) * self.momentum
            + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * self.momentum
            + var * (1.0 - self.momentum)
        )
        return ops.cast(outputs, self.compute_dtype)

    def _scale_and_offset(self, mean, variance, gamma, beta):
        scale = ops.rsqrt(variance + self.epsilon)
        if gamma is not None:
            scale = scale * gamma
        offset = -mean * scale
        if beta is not None:
            offset = offset + beta
        return scale, offset

    def _equal_ghosts(self, x, gamma, beta):
        """Batch a multiple of `virtual_batch_size`: one reshape, per-ghost moments.

        Channels last, the batch becomes `(G, vbs·positions, C)` and the
        moments reduce one axis: under XLA on CPU this is about 2x faster
        than reducing `(G, vbs, H, W, C)` over three axes (benchmarks/layers.py).
        """
        vbs = self.virtual_batch_size
        ndim = len(x.shape)
        channel_axis = self.axis % ndim
        if channel_axis == ndim - 1:
            shape = [1, 1, x.shape[-1]]
            ghosts = ops.reshape(x, [-1, vbs * self._positions(x, range(1, ndim - 1)), x.shape[-1]])
            axes = [1]
        else:
            shape = None
            inner = [d if d is not None else ops.shape(x)[i + 1] for i, d in enumerate(x.shape[1:])]
            ghosts = ops.reshape(x, [-1, vbs] + inner)  # (G, vbs, ...)
            axes = [1] + [i + 1 for i in range(1, ndim) if i != channel_axis]
        mean, variance = ops.moments(ghosts, axes=axes, keepdims=True)
        if gamma is not None:
            gamma = ops.reshape(gamma, shape) if shape else ops.expand_dims(gamma, 0)
        if beta is not None:
            beta = ops.reshape(beta, shape) if shape else ops.expand_dims(beta, 0)
        scale, offset = self._scale_and_offset(mean, variance, gamma, beta)
        outputs = ops.reshape(ghosts * scale + offset, ops.shape(x))
        channel = 2 if shape else channel_axis + 1  # of `ghosts`
        reduce = [i for i in range(len(ghosts.shape)) if i != channel]
        return outputs, ops.mean(mean, axis=reduce), ops.mean(variance, axis=reduce)

    @staticmethod
    def _positions(x, axes):
        """The product of `x`'s sizes along `axes` (a Python int when static)."""
        static = [x.shape[i] for i in axes]
        if all(d is not None for d in static):
            return math.prod(static)
        return ops.prod(ops.take(ops.shape(x), list(axes)))

    def _merged_remainder(self, x, gamma, beta):
        """Any batch: ghost membership as a one-hot matrix, remainder merged."""
        vbs = self.virtual_batch_size
        ndim = len(x.shape)
        channel_axis = self.axis % ndim
        channels = x.shape[channel_axis]
        other_axes = [i for i in range(1, ndim) if i != channel_axis]
        per_example_shape = [-1] + [
            channels if i == channel_axis else 1 for i in range(1, ndim)
        ]
        static_positions = [x.shape[i] for i in other_axes]
        if all(d is not None for d in static_positions):
            positions = float(math.prod(static_positions))
        else:
            positions = ops.cast(
                ops.prod(ops.take(ops.shape(x), other_axes)), x.dtype
            )
        batch = x.shape[0] if x.shape[0] is not None else ops.shape(x)[0]
        if isinstance(batch, int):
            count = max(batch // vbs, 1)
        else:
            count = ops.maximum(batch // vbs, 1)
        ghost_ids = ops.minimum(ops.arange(batch) // vbs, count - 1)
        members = ops.one_hot(ghost_ids, count, dtype=x.dtype)  # (B, G)
        counts = ops.sum(members, axis=0) * positions  # (G,)

        def per_ghost(per_example):  # (B, C) sums -> (G, C) means
            return ops.matmul(ops.transpose(members), per_example) / counts[:, None]

        def back_to_examples(per_ghost_values):  # (G, C) -> broadcastable to x
            return ops.reshape(ops.matmul(members, per_ghost_values), per_example_shape)

        sums = ops.sum(x, axis=other_axes) if other_axes else x
        ghost_mean = per_ghost(sums)
        centred = x - back_to_examples(ghost_mean)
        squares = ops.sum(ops.square(centred), axis=other_axes) if other_axes else ops.square(centred)
        ghost_var = per_ghost(squares)
        scale, offset = self._scale_and_offset(
            back_to_examples(ghost_mean), back_to_examples(ghost_var), gamma, beta)
        outputs = x * scale + offset
        weights = counts / ops.sum(counts)
        mean = ops.matmul(weights[None, :], ghost_mean)[0]
        var = ops.matmul(weights[None, :], ghost_var)[0]
        return outputs, mean, var

    def get_config(self):
        config = super().get_config()
        for name in ("renorm", "renorm_clipping", "renorm_momentum", "synchronized"):
            config.pop(name, None)
        config["virtual_batch_size"] = self.virtual_batch_size
        return config
