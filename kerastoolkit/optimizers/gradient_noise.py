"""Annealed Gaussian gradient noise (Neelakantan et al., 2015)."""

import random

import numpy as np

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


@keras.saving.register_keras_serializable(package="kerastoolkit")
class GradientNoise(_common.OptimizerWrapper):
    """Adds annealed Gaussian noise to the gradients, then runs an optimizer.

    At step `t` (0 for the first step) every gradient gets independent
    Gaussian noise before the wrapped optimizer's update:

    ```python
    σ_t² = eta / (1 + t)^gamma
    g = g + N(0, σ_t²)
    ```

    The noise of all variables is one draw (split by variable) from a seed
    made of `seed` and `t` (on JAX with `keras.random.normal` and a stateless
    `keras.random.SeedGenerator`; on TensorFlow with the same stateless
    normal, Philox algorithm pinned, because TensorFlow's default choice
    under XLA on CPU is ~60x slower), so it is reproducible, identical
    across replicas, and continues unchanged after a save and reload. Under
    `tf.distribute` each of the `R` replicas adds `noise / R` before the
    gradients are summed, so the summed gradient carries exactly `N(0, σ_t²)`.
    Clipping and weight decay are the wrapped optimizer's (applied after the
    noise).

    Args:
        optimizer: The `keras.optimizers.Optimizer` to wrap.
        eta: `η` > 0, the noise variance at `t = 0`. The paper uses 0.01,
            0.3 or 1.0. Defaults to `0.01`.
        gamma: `γ` >= 0, the annealing exponent. Defaults to `0.55`, the
            paper's value.
        seed: Integer seed of the noise, or `None` for a random one drawn
            when the optimizer is created (then saved in `get_config()`, so a
            reloaded optimizer continues with the same noise). Defaults to
            `None`.
        noise_dtype: `"float32"`, `"bfloat16"` or `"float16"`: the precision
            the noise is drawn in (then cast to the gradient's). Lower
            precision keeps the variance (relative rounding error below
            2^-8) and is cheaper to draw. Defaults to `"float32"`.
        name: Name of the optimizer. Defaults to `None`.

    Raises:
        TypeError: if `optimizer` is not a `keras.optimizers.Optimizer` or
            `seed` is not an integer.
        ValueError: if `eta <= 0` or `gamma < 0`.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.GradientNoise(keras.optimizers.Adam(1e-3), eta=0.01)
    model.compile(optimizer=opt, loss="mse")
    ```

    References:
        - Neelakantan et al., 2015, "Adding Gradient Noise Improves Learning
          for Very Deep Networks", arXiv:1511.06807.
    """

    def __init__(
        self, optimizer, eta=0.01, gamma=0.55, seed=None, noise_dtype="float32", name=None
    ):
        _common.check_optimizer(optimizer, "optimizer")
        eta = _common.check_real("eta", eta, 0.0, low_open=True)
        gamma = _common.check_real("gamma", gamma, 0.0)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(
                    f"`seed` must be an integer or None. Received: seed={seed!r}"
                )
        if noise_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                "Argument `noise_dtype` must be 'float32', 'bfloat16' or "
                f"'float16'. Received: noise_dtype={noise_dtype!r}"
            )
        super().__init__(optimizer, name=name)
        self.noise_dtype = noise_dtype
        self.eta = eta
        self.gamma = gamma
        self.seed = seed
        self._noise_seed = (
            random.randint(1, 2**30) if seed is None else int(seed) % (2**31)
        )

    def noise_stddev(self, step):
        """`σ_t = sqrt(eta / (1 + t)^gamma)` at step `t`."""
        step = ops.cast(step, "float32")
        return ops.sqrt(self.eta / ops.power(1.0 + step, self.gamma))

    def _normal(self, count, stddev, step):
        """`count` Gaussian numbers with std `stddev`, fixed by (seed, step).

        One draw for all variables (fewer, larger kernels than one per
        variable), in `noise_dtype`.
        """
        dtype = self.noise_dtype
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # inherently needed: the RNG algorithm

            # What `keras.random.normal` computes, with the Philox algorithm
            # pinned: TensorFlow's automatic choice under XLA on CPU is about
            # 60x slower.
            seed = tf.stack([
                tf.constant(self._noise_seed, tf.int32),
                tf.cast(tf.math.floormod(step, 2**31 - 1), tf.int32),
            ])
            return tf.random.stateless_normal(
                [count], seed, stddev=tf.cast(stddev, dtype), dtype=dtype, alg="philox")
        # A seed computed from the step: the noise of step `t` is the same in
        # every replica, after a reload, and under `jax.jit`.
        seed = ops.stack([
            ops.convert_to_tensor(self._noise_seed, dtype="uint32"),
            ops.cast(step, "uint32"),
        ])
        return _keras_compat.normal_from_seed(
            (count,), seed, stddev=ops.cast(stddev, dtype), dtype=dtype
        )

    def apply(self, grads, trainable_variables=None):
        self._build_if_needed(trainable_variables)
        variables = (
            _keras_compat.built_variables(self)
            if trainable_variables is None
            else list(trainable_variables)
        )
        step = self.iterations
        stddev = self.noise_stddev(step) / _common.num_replicas_in_sync()
        noisy = list(grads)
        targets = [
            i for i, (g, v) in enumerate(zip(grads, variables))
            if g is not None and not _common.overwrites_with_gradient(v)
        ]
        sizes = [int(np.prod(grads[i].shape)) for i in targets]
        if sum(sizes):
            noise = self._normal(sum(sizes), stddev, step)
            offset = 0
            for i, size in zip(targets, sizes):
                g = ops.convert_to_tensor(grads[i])
                piece = ops.reshape(noise[offset:offset + size], g.shape)
                noisy[i] = ops.add(g, ops.cast(piece, g.dtype))
                offset += size
        self.inner_optimizer.apply(noisy, trainable_variables)
        self.iterations.assign_add(1)

    def get_config(self):
        config = self._wrapper_config()
        # The seed drawn when `seed=None` is saved, so a reloaded optimizer
        # continues with the same noise (issue 13, item 7).
        config.update({
            "eta": self.eta,
            "gamma": self.gamma,
            "seed": self._noise_seed,
            "noise_dtype": self.noise_dtype,
        })
        return config
