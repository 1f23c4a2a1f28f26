"""RectifiedAdam (RAdam): Adam with a variance-rectified adaptive rate (Liu et al., 2020)."""

import math

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


@keras.saving.register_keras_serializable(package="kerastoolkit")
class RectifiedAdam(keras.optimizers.Optimizer):
    """Adam whose adaptive learning rate is rectified while its variance is large.

    Algorithm 2 of Liu et al. (2020), for each variable at step
    `t = 1, 2, ...` with gradient `g_t`:

    ```python
    m_t = β1·m + (1 − β1)·g_t
    v_t = β2·v + (1 − β2)·g_t²            # v_t = max(v̂, v_t) with amsgrad
    m̂_t = m_t / (1 − β1^t)
    ρ∞ = 2/(1 − β2) − 1
    ρ_t = ρ∞ − 2t·β2^t/(1 − β2^t)         # length of the approximated SMA
    if ρ_t >= sma_threshold:              # variance tractable: rectified Adam
        r_t = sqrt((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t))
        w = w − η_t·r_t·m̂_t / (sqrt(v_t/(1 − β2^t)) + ε)
    else:                                 # SGD with (bias-corrected) momentum
        w = w − η_t·m̂_t
    ```

    `ρ_1 = 1` and `ρ_t` grows to `ρ∞` (1999 for `β2 = 0.999`), so the first
    steps are momentum SGD: the adaptive rate is switched on only once
    enough squared gradients have been seen for its variance to be finite,
    which is what a warmup of Adam does by hand.

    **The threshold.** The paper's Algorithm 2 rectifies when `ρ_t > 4`
    (where `r_t` becomes real). Its reference code and tfa use
    `ρ_t >= 5` (`sma_threshold=5.0`, the default here): just above 4 the
    variance `r_t` corrects is itself huge and `r_t` tiny, and the authors
    keep those steps as momentum SGD. With `β2 = 0.999` the first rectified
    step is `t = 6` at the default and `t = 5` with `sma_threshold=4.0`
    (`ρ_5 ≈ 4.99`), the paper's test (at `ρ_t = 4` exactly, `r_t = 0`:
    `>= 4` and `> 4` make the same updates). As in tfa, `ε` is added to the bias-corrected
    `sqrt(v̂_t)` (Keras's `Adam` adds its `ε` to `sqrt(v_t)`).

    **tfa's built-in warmup.** With `total_steps` the rate `η` (a float or a
    schedule) gets tfa's warmup and linear decay: with `W = total_steps ·
    warmup_proportion` and `D = max(total_steps − W, 1)`,

    ```python
    η_t = η·t/W                                   if t <= W
    η_t = η + (min_lr − η)·min(t − W, D)/D        otherwise
    ```

    `weight_decay` is Keras's decoupled decay, `w ← w − η·λ·w` before the
    update, with `η` the optimizer's `learning_rate` (tfa applied its decay
    with `η_t`, the warmed-up rate: the same when `total_steps` is not set).

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            with no arguments: `η`. Defaults to `0.001`.
        beta_1: `β1` in `[0, 1)`, the decay of the first moment. Defaults to
            `0.9`.
        beta_2: `β2` in `[0, 1)`, the decay of the second moment. Defaults to
            `0.999`.
        epsilon: `ε` >= 0, added to `sqrt(v̂_t)`. Defaults to `1e-7`.
        amsgrad: Whether to use the running maximum of `v_t` (AMSGrad,
            Reddi et al. 2018; not in the RAdam paper, offered as tfa did).
            Defaults to `False`.
        sma_threshold: The smallest `ρ_t` that is rectified, >= 4 (`4.0`
            is the paper's Algorithm 2). Defaults to `5.0` (the authors' code
            and tfa).
        total_steps: An int >= 1 to turn on tfa's warmup and linear decay
            of the rate over that many steps, or `None`. Defaults to `None`.
        warmup_proportion: A float in `[0, 1]`, `W / total_steps`; needs
            `total_steps`. Defaults to `None` (`0.1` with `total_steps`).
        min_lr: A float >= 0, the rate at `total_steps`; needs
            `total_steps`. Defaults to `None` (`0.0` with `total_steps`).
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
        ValueError: if `learning_rate` or `epsilon` is negative, `beta_1` or
            `beta_2` is outside `[0, 1)`, `sma_threshold < 4`,
            `total_steps < 1`, `warmup_proportion` is outside `[0, 1]`,
            `min_lr < 0`, or `warmup_proportion`/`min_lr` is given without
            `total_steps`.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.RectifiedAdam(learning_rate=1e-3)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    # "Ranger": RAdam inside Lookahead.
    ranger = kt.optimizers.Lookahead(kt.optimizers.RectifiedAdam(), sync_period=6)
    ```

    References:
        - Liu, Jiang, He, Chen, Liu, Gao & Han, 2020, "On the Variance of the
          Adaptive Learning Rate and Beyond", ICLR (arXiv:1908.03265),
          Algorithm 2.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        sma_threshold=5.0,
        total_steps=None,
        warmup_proportion=None,
        min_lr=None,
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
        self.beta_1 = _common.check_beta("beta_1", beta_1)
        self.beta_2 = _common.check_beta("beta_2", beta_2)
        self.epsilon = _common.check_real("epsilon", epsilon, 0.0)
        if not isinstance(amsgrad, bool):
            raise TypeError(
                f"Argument `amsgrad` must be a bool. Received: amsgrad={amsgrad!r}"
            )
        self.amsgrad = amsgrad
        self.sma_threshold = _common.check_real(
            "sma_threshold", sma_threshold, low=4.0
        )
        self._check_warmup(total_steps, warmup_proportion, min_lr)

    def _check_warmup(self, total_steps, warmup_proportion, min_lr):
        self.total_steps = _common.check_int(
            "total_steps", total_steps, 1, allow_none=True
        )
        self.warmup_proportion = _common.check_real(
            "warmup_proportion", warmup_proportion, 0.0, 1.0, allow_none=True
        )
        self.min_lr = _common.check_real("min_lr", min_lr, 0.0, allow_none=True)
        if self.total_steps is None:
            for name in ("warmup_proportion", "min_lr"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"Argument `{name}` shapes the warmup and decay that "
                        "`total_steps` turns on; pass `total_steps` too. "
                        f"Received: {name}={getattr(self, name)}, total_steps=None"
                    )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(
                var_list, "velocity_hat"
            )

    def _warmed_up_rate(self, lr, t):
        """tfa's warmup then linear decay of `lr`, at step `t` (from 1)."""
        total = float(self.total_steps)
        proportion = 0.1 if self.warmup_proportion is None else self.warmup_proportion
        min_lr = 0.0 if self.min_lr is None else self.min_lr
        warmup = total * proportion
        decay_steps = max(total - warmup, 1.0)
        rising = ops.multiply(lr, ops.divide(t, max(warmup, 1e-12)))
        progress = ops.divide(ops.minimum(ops.subtract(t, warmup), decay_steps),
                              decay_steps)
        falling = ops.add(lr, ops.multiply(ops.subtract(min_lr, lr), progress))
        return ops.where(ops.less_equal(t, warmup), rising, falling)

    def _beta_2_terms(self, t):
        """`(β2^t, 1 − β2^t)` without cancellation in float32.

        `1 − β2^t` for `β2 = 0.999` and small `t` loses 5 digits as a
        difference; `ρ_t` subtracts two numbers near `ρ∞` built from it, and
        `r_t` at the first rectified steps came out 1% off. `−expm1(t·ln β2)`
        is exact to rounding.
        """
        log_beta_2 = math.log(self.beta_2) if self.beta_2 > 0 else -math.inf
        exponent = ops.multiply(t, log_beta_2)
        one_minus_power = ops.negative(ops.expm1(exponent))
        return ops.subtract(1.0, one_minus_power), one_minus_power

    def _rectification(self, t, beta_2_power, one_minus_power):
        """`(ρ_t >= threshold, r_t)` at step `t` (a float tensor, from 1)."""
        rho_inf = 2.0 / (1.0 - self.beta_2) - 1.0
        rho_t = ops.subtract(
            rho_inf,
            ops.divide(ops.multiply(2.0 * t, beta_2_power), one_minus_power),
        )
        ratio = ops.divide(
            ops.multiply(ops.multiply(ops.subtract(rho_t, 4.0),
                                      ops.subtract(rho_t, 2.0)), rho_inf),
            ops.multiply((rho_inf - 4.0) * (rho_inf - 2.0), rho_t),
        )
        # Below the threshold r_t is unused; the clip keeps its sqrt real.
        r_t = ops.sqrt(ops.maximum(ratio, 0.0))
        return ops.greater_equal(rho_t, self.sma_threshold), r_t

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        if self.total_steps is not None:
            lr = self._warmed_up_rate(lr, t)
        index = _keras_compat.variable_index(self, variable)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), t)
        m_hat = ops.divide(m, ops.subtract(1.0, beta_1_power))
        beta_2_power, one_minus_power = self._beta_2_terms(t)
        rectified, r_t = self._rectification(t, beta_2_power, one_minus_power)
        denominator = ops.add(ops.sqrt(ops.divide(v, one_minus_power)), self.epsilon)
        step = ops.where(rectified,
                         ops.divide(ops.multiply(m_hat, r_t), denominator), m_hat)
        self.assign_sub(variable, ops.multiply(lr, step))

    def get_config(self):
        config = super().get_config()
        config.update({
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
            "sma_threshold": self.sma_threshold,
            "total_steps": self.total_steps,
            "warmup_proportion": self.warmup_proportion,
            "min_lr": self.min_lr,
        })
        return config
