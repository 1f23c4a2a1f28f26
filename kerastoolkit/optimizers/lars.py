"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017)."""

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


@keras.saving.register_keras_serializable(package="kerastoolkit")
class LARS(keras.optimizers.Optimizer):
    """Momentum SGD with a layer-wise trust ratio, for large mini-batches.

    Algorithm 1 of You et al. (2017), for each adapted variable `w` (one
    layer's kernel) with gradient `g`, global learning rate `γ(t)`, trust
    coefficient `η`, weight decay `β` and momentum `μ`:

    ```python
    λ = η·||w|| / (||g|| + β·||w|| + ε)     # local learning rate
    v = μ·v + γ(t)·λ·(g + β·w)
    w = w − v
    ```

    `λ = 1` when `||w||` or `||g||` is 0 (a freshly zero-initialized layer
    or no gradient), as in common implementations; the paper leaves it
    undefined. Variables excluded from adaptation (biases and normalization
    parameters by default, as in the paper) take the plain momentum step
    `v = μ·v + γ(t)·g` with no weight decay.

    `weight_decay` here is the paper's `β`: it enters the trust ratio and the
    update above and is **not** applied a second time as Keras's decoupled
    decay (`get_config()["weight_decay"]` is `β`).

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            with no arguments: the global rate `γ`. Defaults to `1.0`.
        momentum: `μ` in `[0, 1)`. Defaults to `0.9`.
        weight_decay: `β` >= 0. Defaults to `0.0005`, the paper's value.
        trust_coefficient: `η` > 0. Defaults to `0.001`, the paper's value.
        epsilon: `ε` >= 0 added to the trust-ratio denominator.
            Defaults to `0.0`.
        exclude_from_adaptation: `None` to exclude every variable with fewer
            than 2 dimensions (biases, batch/layer-norm scales and offsets),
            or a list of strings: then exactly the variables whose path
            contains one of them are excluded (`[]` adapts every variable).
            Defaults to `None`.
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
        ValueError: if `learning_rate`, `weight_decay` or `epsilon` is
            negative, `momentum` is outside `[0, 1)` or
            `trust_coefficient <= 0`.
        TypeError: if `exclude_from_adaptation` is not `None` or a list of
            strings.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.LARS(learning_rate=2.0, momentum=0.9)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4096)
    ```

    References:
        - You, Gitman & Ginsburg, 2017, "Large Batch Training of
          Convolutional Networks", arXiv:1708.03888.
    """

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.9,
        weight_decay=0.0005,
        trust_coefficient=0.001,
        epsilon=0.0,
        exclude_from_adaptation=None,
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
        momentum = _common.check_beta("momentum", momentum)
        weight_decay = _common.check_real("weight_decay", weight_decay, 0.0)
        trust_coefficient = _common.check_real("trust_coefficient", trust_coefficient, 0.0, low_open=True)
        epsilon = _common.check_real("epsilon", epsilon, 0.0)
        if exclude_from_adaptation is not None:
            if isinstance(exclude_from_adaptation, str) or not all(
                isinstance(s, str) for s in exclude_from_adaptation
            ):
                raise TypeError(
                    "`exclude_from_adaptation` must be None or a list of "
                    "strings. Received: "
                    f"exclude_from_adaptation={exclude_from_adaptation!r}"
                )
            exclude_from_adaptation = list(exclude_from_adaptation)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=None,  # β is LARS's own, not decoupled decay
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
        self.lars_weight_decay = weight_decay
        self.trust_coefficient = trust_coefficient
        self.epsilon = epsilon
        self.exclude_from_adaptation = exclude_from_adaptation

    def is_adapted(self, variable):
        """Whether `variable` gets the trust ratio and weight decay."""
        if self.exclude_from_adaptation is None:
            return len(variable.shape) >= 2
        path = getattr(variable, "path", None) or str(variable.name)
        return not any(s in path for s in self.exclude_from_adaptation)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = self.add_optimizer_variables(var_list, "momentum")
        self._adapted = [self.is_adapted(v) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = _keras_compat.variable_index(self, variable)
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        v_var = self.momentums[index]
        v = ops.convert_to_tensor(v_var)
        w = ops.convert_to_tensor(variable)
        momentum = ops.cast(self.momentum, dtype)
        if self._adapted[index]:
            beta = ops.cast(self.lars_weight_decay, dtype)
            w_norm = ops.sqrt(_common.total(ops.square(w)))
            g_norm = ops.sqrt(_common.total(ops.square(g)))
            denominator = g_norm + beta * w_norm + self.epsilon
            usable = ops.logical_and(ops.greater(w_norm, 0),
                                     ops.greater(g_norm, 0))
            trust = ops.where(
                usable,
                self.trust_coefficient * w_norm
                / ops.where(usable, denominator, ops.ones_like(denominator)),
                ops.ones_like(w_norm),
            )
            update = ops.multiply(lr * trust, ops.add(g, beta * w))
        else:
            update = ops.multiply(lr, g)
        v_new = ops.add(ops.multiply(momentum, v), update)
        self.assign(v_var, v_new)
        self.assign_sub(variable, v_new)

    def get_config(self):
        config = super().get_config()
        config.update({
            "momentum": self.momentum,
            "weight_decay": self.lars_weight_decay,
            "trust_coefficient": self.trust_coefficient,
            "epsilon": self.epsilon,
            "exclude_from_adaptation": self.exclude_from_adaptation,
        })
        return config
