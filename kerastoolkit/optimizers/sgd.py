"""SGD whose momentum may follow a schedule."""

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with a constant or scheduled momentum.

    The lecture's momentum update, with the momentum `β(t)` allowed to change
    over training (start at 0.5 and increase it, Sutskever et al. 2013):

    ```python
    m = β(t) * m - η(t) * g
    w = w + m
    ```

    With `nesterov=True`: `w = w + β(t) * m - η(t) * g` (after updating `m`).
    `t` is the optimizer step before the update (`optimizer.iterations`, 0
    for the first step), the same step a learning-rate schedule receives.
    With a constant float `momentum` this is exactly
    `keras.optimizers.SGD`. Weight decay (`weight_decay`) is Keras's
    decoupled decay, `w ← w − η·λ·w` before the step.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            with no arguments. The learning rate `η`. Defaults to `0.01`.
        momentum: A float in `[0, 1)`, or a
            `keras.optimizers.schedules.LearningRateSchedule` (or any callable
            of the step) giving `β(t)`, e.g.
            `keras.optimizers.schedules.PolynomialDecay(0.5, 10_000, 0.99)`,
            which rises linearly from 0.5 to 0.99 over 10,000 steps (use a
            serializable schedule for `model.save`). Defaults to `0.9`.
        nesterov: Whether to apply Nesterov momentum. Defaults to `False`.
        weight_decay: Decoupled weight decay `λ`. Defaults to `None`.
        clipnorm: Per-variable gradient norm clipping. Defaults to `None`.
        clipvalue: Gradient value clipping. Defaults to `None`.
        global_clipnorm: Global gradient norm clipping. Defaults to `None`.
        use_ema: Whether to keep an exponential moving average of the
            weights. Defaults to `False`.
        ema_momentum: Momentum of that average. Defaults to `0.99`.
        ema_overwrite_frequency: Steps between overwriting the weights with
            the average. Defaults to `None`.
        loss_scale_factor: Static loss scale. Defaults to `None`.
        gradient_accumulation_steps: Steps to accumulate gradients over.
            Defaults to `None`.
        name: Name of the optimizer. Defaults to `None`.

    Raises:
        ValueError: if `learning_rate < 0` or a float `momentum` is outside
            `[0, 1)`.
        TypeError: if `momentum` is neither a number nor a schedule/callable.

    Example:

    ```python
    import kerastoolkit as kt
    # β rises linearly from 0.5 to 0.99 over the first 1,000 steps.
    beta = keras.optimizers.schedules.PolynomialDecay(
        0.5, decay_steps=1000, end_learning_rate=0.99)
    opt = kt.optimizers.SGD(learning_rate=0.05, momentum=beta)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    ```

    References:
        - Sutskever et al., 2013, "On the importance of initialization and
          momentum in deep learning", ICML.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
    ):
        learning_rate = _common.check_learning_rate(learning_rate)
        if isinstance(
            momentum, keras.optimizers.schedules.LearningRateSchedule
        ) or callable(momentum):
            pass
        else:
            momentum = _common.check_beta("momentum", momentum)
        if not isinstance(nesterov, bool):
            raise TypeError(
                f"`nesterov` must be a bool. Received: nesterov={nesterov!r}"
            )
        if weight_decay is not None:
            weight_decay = _common.check_real("weight_decay", weight_decay, 0.0)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
        )
        self.momentum = momentum
        self.nesterov = nesterov

    @property
    def scheduled_momentum(self):
        """Whether `momentum` is a schedule rather than a constant."""
        return not isinstance(self.momentum, float)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.scheduled_momentum or self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def current_momentum(self):
        """The momentum `β(t)` the next step will use."""
        if self.scheduled_momentum:
            return self.momentum(self.iterations)
        return self.momentum

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.scheduled_momentum and self.momentums:
            # Evaluate β(t) once per step, not once per variable: it travels
            # with the learning rate through Keras's (distribution-aware)
            # per-variable update. A Keras that stopped calling this hook
            # would only cost speed: `update_step` then evaluates β(t) itself.
            learning_rate = (learning_rate, self.current_momentum())
        _keras_compat.backend_update_step(super(), grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        momentum = None
        if isinstance(learning_rate, tuple):
            learning_rate, momentum = learning_rate
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if not self.momentums:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        m = self.momentums[_keras_compat.variable_index(self, variable)]
        if momentum is None:
            momentum = self.current_momentum()
        momentum = ops.cast(momentum, variable.dtype)
        self.assign(
            m,
            ops.subtract(
                ops.multiply(m, momentum),
                ops.multiply(gradient, learning_rate),
            ),
        )
        if self.nesterov:
            self.assign_add(
                variable,
                ops.subtract(
                    ops.multiply(m, momentum),
                    ops.multiply(gradient, learning_rate),
                ),
            )
        else:
            self.assign_add(variable, m)

    def get_config(self):
        config = super().get_config()
        momentum = self.momentum
        if self.scheduled_momentum:
            momentum = keras.saving.serialize_keras_object(momentum)
        config.update({"momentum": momentum, "nesterov": self.nesterov})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("momentum"), dict):
            config["momentum"] = keras.saving.deserialize_keras_object(
                config["momentum"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)
