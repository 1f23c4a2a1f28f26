"""Lookahead wrapper (Zhang et al., 2019)."""

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


class _CopyOf:
    """Initializer: a copy of a variable's value when the optimizer is built.

    TensorFlow builds the optimizer while tracing the first train step when
    no strategy is set; the value is then read eagerly (`tf.init_scope`) and
    enters the graph as a constant, so the variable's initializer can be
    lifted out of the function (XLA requires that). A copy, because on JAX
    the two variables must not share a buffer (it is donated).
    """

    def __init__(self, variable):
        self.variable = variable

    def __call__(self, shape, dtype=None):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # inherently needed: tf.init_scope

            with tf.init_scope():
                value = ops.convert_to_numpy(self.variable)
            # A constant in the traced graph, which TensorFlow can lift.
            return tf.constant(value, dtype=dtype)
        return ops.copy(ops.cast(ops.convert_to_tensor(self.variable), dtype))


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Lookahead(_common.OptimizerWrapper):
    """Lookahead: k fast steps forward, then one step back toward slow weights.

    Wraps any Keras or kerastoolkit optimizer `A` (the "fast" optimizer).
    The slow weights `φ` start at the model's weights `θ` when the optimizer
    is built. Every step the fast optimizer updates `θ`; every
    `sync_period = k` steps (after fast steps `k, 2k, ...`):

    ```python
    φ = φ + α·(θ − φ)      # slow_step_size α
    θ = φ
    ```

    The fast optimizer's own state (momenta, Adam moments) is kept across
    synchronizations, as in the paper's experiments. The slow weights are
    optimizer variables, saved with the model and restored on load. Steps
    between synchronizations cost only the fast optimizer's update (the
    synchronization runs under a `cond`, except under `tf.distribute`,
    where it is computed every step and selected per device).

    Args:
        optimizer: The `keras.optimizers.Optimizer` to wrap (Keras's or
            kerastoolkit's); it gives the learning rate and the fast steps.
        sync_period: `k`, fast steps between synchronizations, >= 1.
            Defaults to `5`.
        slow_step_size: `α` in `(0, 1]`. Defaults to `0.5`.
        name: Name of the optimizer. Defaults to `None`.

    Raises:
        TypeError: if `optimizer` is not a `keras.optimizers.Optimizer`.
        ValueError: if `sync_period < 1` or `slow_step_size` is outside
            `(0, 1]`.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.Lookahead(keras.optimizers.Adam(1e-3), sync_period=5)
    model.compile(optimizer=opt, loss="mse")
    ```

    References:
        - Zhang, Lucas, Hinton & Ba, 2019, "Lookahead Optimizer: k steps
          forward, 1 step back", NeurIPS.
    """

    def __init__(self, optimizer, sync_period=5, slow_step_size=0.5, name=None):
        _common.check_optimizer(optimizer, "optimizer")
        sync_period = _common.check_int("sync_period", sync_period, 1)
        slow_step_size = _common.check_real("slow_step_size", slow_step_size, low=0.0, high=1.0, low_open=True)
        super().__init__(optimizer, name=name)
        self.sync_period = sync_period
        self.slow_step_size = slow_step_size

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.slow_weights = []
        for variable in var_list:
            if _common.overwrites_with_gradient(variable):
                self.slow_weights.append(None)
                continue
            self.slow_weights.append(self.add_variable_from_reference(
                variable, name="slow", initializer=_CopyOf(variable)))

    def apply(self, grads, trainable_variables=None):
        self._build_if_needed(trainable_variables)
        self.inner_optimizer.apply(grads, trainable_variables)
        variables = (
            _keras_compat.built_variables(self)
            if trainable_variables is None
            else list(trainable_variables)
        )
        to_sync = [
            v for g, v in zip(grads, variables)
            if g is not None and not _common.overwrites_with_gradient(v)
        ]
        sync = ops.equal(ops.mod(self.iterations + 1, self.sync_period), 0)
        if _common.in_tf_distribution():
            # Model variables are written per device through the strategy;
            # `where` keeps the step free of control flow around merge_call.
            _common.update_each_variable(
                lambda v: self._synchronize_where(v, sync), to_sync)
        elif keras.backend.backend() == "jax":
            # Pure branches: the new values come out of the `cond`.
            new_values = ops.cond(
                sync,
                lambda: [self._synchronized(v) for v in to_sync],
                lambda: [(self._slow_of(v).value, v.value) for v in to_sync],
            )
            for v, (slow, fast) in zip(to_sync, new_values):
                self._slow_of(v).assign(slow)
                v.assign(fast)
        else:
            # Only synchronization steps pay for the update.
            ops.cond(sync, lambda: self._synchronize_all(to_sync),
                     lambda: None)
        self.iterations.assign_add(1)

    def _slow_of(self, variable):
        return self.slow_weights[_keras_compat.variable_index(self, variable)]

    def _synchronized(self, variable):
        """φ + α(θ − φ): the new slow (and fast) weights."""
        slow = ops.convert_to_tensor(self._slow_of(variable))
        fast = ops.convert_to_tensor(variable)
        alpha = ops.cast(self.slow_step_size, fast.dtype)
        new_slow = ops.add(slow, ops.multiply(alpha, ops.subtract(fast, slow)))
        return new_slow, new_slow

    def _synchronize_all(self, variables):
        for variable in variables:
            new_slow, _ = self._synchronized(variable)
            self.assign(self._slow_of(variable), new_slow)
            self.assign(variable, new_slow)

    def _synchronize_where(self, variable, sync):
        slow = ops.convert_to_tensor(self._slow_of(variable))
        fast = ops.convert_to_tensor(variable)
        new_slow, _ = self._synchronized(variable)
        self.assign(self._slow_of(variable), ops.where(sync, new_slow, slow))
        self.assign(variable, ops.where(sync, new_slow, fast))

    def get_config(self):
        config = self._wrapper_config()
        config.update({
            "sync_period": self.sync_period,
            "slow_step_size": self.slow_step_size,
        })
        return config
