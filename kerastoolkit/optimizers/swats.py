"""SWATS: Adam that switches to SGD (Keskar & Socher, 2017)."""

import keras
from keras import ops

from kerastoolkit import _keras_compat
from kerastoolkit.optimizers import _common


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SWATS(keras.optimizers.Optimizer):
    """Adam early, then SGD: switches when the paper's criterion fires.

    Algorithm 1 of Keskar & Socher (2017), for each variable at step
    `k = 1, 2, ...` with gradient `g_k`. In the Adam phase:

    ```python
    m_k = β1·m + (1 − β1)·g_k
    a_k = β2·a + (1 − β2)·g_k²
    p_k = −α·sqrt(1 − β2^k)/(1 − β1^k) · m_k/(sqrt(a_k) + ε)
    w = w + p_k
    if p_kᵀg_k ≠ 0:
        γ_k = p_kᵀp_k / (−p_kᵀg_k)          # projected SGD learning rate
        λ_k = β2·λ + (1 − β2)·γ_k           # its exponential average
        if k > 1 and |λ_k/(1 − β2^k) − γ_k| < ε_switch·|γ_k|:
            switch to SGD with Λ = λ_k/(1 − β2^k) and v = 0
    ```

    **Deviation from the paper (the switch test).** Algorithm 1 tests
    `|λ̂_k − γ_k| < ε` with the absolute `ε = 1e-9`. `γ_k` is a learning rate
    (about 0.01-0.1 here) estimated from noisy mini-batch gradients, and in
    float32 `|λ̂_k − γ_k|` stays far above 1e-9 (on a digits MLP for 15
    epochs, none of 4 variables switched): at the paper's setting the
    optimizer is Adam. The test here is relative by default,
    `|λ̂_k − γ_k| < ε_switch·|γ_k|` with `ε_switch = 1e-3`, which does not
    depend on the scale of the rate and fires once the averaged estimate
    agrees with the current one to 0.1%. `switch_criterion="absolute"`
    restores the paper's test. Switch steps measured on digits and
    Fashion-MNIST are in BENCHMARKS.md ("SWATS switch steps").

    In the SGD phase: `v = β1·v + g_k; w = w − (1 − β1)·Λ·v`.

    The estimate and the switch are made **per variable** (the paper allows
    it globally or per layer; a Keras variable is a layer's kernel or bias):
    each variable switches at its own step with its own `Λ`. Per variable
    the decision needs no reduction across variables or replicas and runs
    unchanged under `tf.distribute` and on JAX. The switch steps and the
    chosen learning rates are optimizer variables (`switch_steps`,
    `sgd_learning_rates`, see `switch_state()`), so they are saved with the
    optimizer and restored by `keras.saving.load_model`. After the switch the
    SGD learning rate is the constant `Λ` of Algorithm 1 (a learning-rate
    schedule then no longer applies). `weight_decay` is Keras's decoupled
    decay, `w ← w − α(t)·λ·w`, in both phases. The SGD phase reuses the Adam
    first-moment slot for `v`.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            with no arguments: Adam's step size `α`. Defaults to `0.001`.
        beta_1: `β1` in `[0, 1)`, Adam's first-moment decay and the SGD
            momentum. Defaults to `0.9`.
        beta_2: `β2` in `[0, 1)`, Adam's second-moment decay and the decay of
            the learning-rate estimate `λ`. Defaults to `0.999`.
        epsilon: Adam's `ε` (added to `sqrt(a_k)`). Defaults to `1e-9`, the
            paper's value.
        switch_tolerance: `ε_switch` of the switch criterion. `0.0` never
            switches (plain Adam). Defaults to `1e-3`.
        switch_criterion: `"relative"` switches when
            `|λ̂_k − γ_k| < ε_switch·|γ_k|`, `"absolute"` (the paper's test)
            when `|λ̂_k − γ_k| < ε_switch`. Defaults to `"relative"`.
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
        ValueError: if `learning_rate < 0`, `beta_1`/`beta_2` are outside
            `[0, 1)`, or `epsilon`/`switch_tolerance` are negative.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.SWATS(learning_rate=1e-3)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20)
    print(opt.switch_state())  # per variable: switch step and SGD rate
    ```

    References:
        - Keskar & Socher, 2017, "Improving Generalization Performance by
          Switching from Adam to SGD", arXiv:1712.07628.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-9,
        switch_tolerance=1e-3,
        switch_criterion="relative",
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
        beta_1 = _common.check_beta("beta_1", beta_1)
        beta_2 = _common.check_beta("beta_2", beta_2)
        epsilon = _common.check_real("epsilon", epsilon, 0.0)
        switch_tolerance = _common.check_real("switch_tolerance", switch_tolerance, 0.0)
        if switch_criterion not in ("relative", "absolute"):
            raise ValueError(
                "Argument `switch_criterion` must be 'relative' or 'absolute'. "
                f"Received: switch_criterion={switch_criterion!r}"
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.switch_tolerance = switch_tolerance
        self.switch_criterion = switch_criterion

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # `_momentums` holds Adam's m_k, then SGD's v_k after the switch.
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        self._lambdas = []
        self.sgd_learning_rates = []
        self.switch_steps = []
        for variable in var_list:
            if _common.overwrites_with_gradient(variable):
                for slots in (self._lambdas, self.sgd_learning_rates,
                              self.switch_steps):
                    slots.append(None)
                continue
            prefix = _common.variable_name(variable)
            self._lambdas.append(
                self.add_variable((), dtype=variable.dtype,
                                  name=f"{prefix}_swats_lambda")
            )
            self.sgd_learning_rates.append(
                self.add_variable((), dtype=variable.dtype,
                                  name=f"{prefix}_swats_sgd_learning_rate")
            )
            self.switch_steps.append(
                self.add_variable((), dtype="int32",
                                  name=f"{prefix}_swats_switch_step")
            )

    def switch_state(self):
        """Per trainable variable: the step it switched at and its SGD rate.

        Returns:
            A list of dicts `{"variable": path, "switch_step": int or None,
            "sgd_learning_rate": float or None}` in the order of the
            variables the optimizer was built with (`None` before the
            switch; steps count from 1).
        """
        if not self.built:
            return []
        state = []
        for variable, step, rate in zip(
            _keras_compat.built_variables(self), self.switch_steps,
            self.sgd_learning_rates,
        ):
            if step is None:
                continue
            step = int(keras.ops.convert_to_numpy(step))
            state.append({
                "variable": getattr(variable, "path", variable.name),
                "switch_step": step if step > 0 else None,
                "sgd_learning_rate": (
                    float(keras.ops.convert_to_numpy(rate)) if step > 0
                    else None
                ),
            })
        return state

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = _keras_compat.variable_index(self, variable)
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        m_var = self._momentums[index]
        a_var = self._velocities[index]
        lam_var = self._lambdas[index]
        sgd_lr_var = self.sgd_learning_rates[index]
        switch_step_var = self.switch_steps[index]
        m = ops.convert_to_tensor(m_var)
        a = ops.convert_to_tensor(a_var)
        lam = ops.convert_to_tensor(lam_var)
        sgd_lr = ops.convert_to_tensor(sgd_lr_var)
        switch_step = ops.convert_to_tensor(switch_step_var)

        step = self.iterations + 1
        local_step = ops.cast(step, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        beta_2_power = ops.power(beta_2, local_step)
        step_int = ops.cast(step, "int32")

        def adam_phase():
            # Keras's Adam arithmetic, then the switch criterion.
            beta_1_power = ops.power(beta_1, local_step)
            m_new = ops.add(m, ops.multiply(ops.subtract(g, m),
                                            1 - self.beta_1))
            a_new = ops.add(a, ops.multiply(ops.subtract(ops.square(g), a),
                                            1 - self.beta_2))
            alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            # p = −α·m/(sqrt(a) + ε), with the sign on the scalar.
            p = ops.divide(ops.multiply(m_new, ops.negative(alpha)),
                           ops.add(ops.sqrt(a_new), self.epsilon))
            p_dot_g = _common.total(ops.multiply(p, g))
            has_estimate = ops.not_equal(p_dot_g, 0)
            safe = ops.where(has_estimate, p_dot_g, ops.ones_like(p_dot_g))
            gamma = ops.divide(_common.total(ops.square(p)), ops.negative(safe))
            lam_new = ops.where(
                has_estimate,
                ops.add(ops.multiply(beta_2, lam),
                        ops.multiply(1 - self.beta_2, gamma)),
                lam,
            )
            lam_hat = ops.divide(lam_new, 1 - beta_2_power)
            threshold = ops.cast(self.switch_tolerance, dtype)
            if self.switch_criterion == "relative":
                threshold = ops.multiply(threshold, ops.abs(gamma))
            switch_now = ops.logical_and(
                ops.logical_and(has_estimate, ops.greater(step_int, 1)),
                ops.less(ops.abs(ops.subtract(lam_hat, gamma)), threshold),
            )
            return (
                p,
                m_new,  # the SGD phase starts from v = 0 (see sgd_phase)
                a_new,
                lam_new,
                ops.where(switch_now, lam_hat, sgd_lr),
                ops.where(switch_now, step_int, switch_step),
            )

        def sgd_phase():
            # The slot still holds Adam's m on the first SGD step: v_0 = 0.
            first = ops.equal(step_int, ops.add(switch_step, 1))
            decay = ops.where(first, ops.zeros_like(beta_1), beta_1)
            v = ops.add(ops.multiply(decay, m), g)
            delta = ops.multiply(v, ops.multiply(self.beta_1 - 1, sgd_lr))
            return delta, v, a, lam, sgd_lr, switch_step

        # Only the active phase runs (`cond`, not `where`): after the switch
        # a step costs what an SGD step costs.
        delta, m_new, a_new, lam_new, sgd_lr_new, switch_step_new = ops.cond(
            ops.greater(switch_step, 0), sgd_phase, adam_phase
        )
        self.assign_add(variable, delta)
        self.assign(m_var, m_new)
        self.assign(a_var, a_new)
        self.assign(lam_var, lam_new)
        self.assign(sgd_lr_var, sgd_lr_new)
        self.assign(switch_step_var, switch_step_new)

    def get_config(self):
        config = super().get_config()
        config.update({
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "switch_tolerance": self.switch_tolerance,
            "switch_criterion": self.switch_criterion,
        })
        return config
