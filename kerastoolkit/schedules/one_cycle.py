"""`OneCycle`: Smith's one-cycle learning-rate policy."""

import math

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.schedules import _base

_ANNEAL_STRATEGIES = ("cos", "linear")


@keras.saving.register_keras_serializable(package="kerastoolkit")
class OneCycle(_base.EpochSchedule):
    """Smith's one-cycle policy: up to `max_learning_rate`, then far below the start.

    Convention: PyTorch's `OneCycleLR` (two phases, same defaults), except
    that the phases end at `t = pct_start·T` and `t = T` instead of PyTorch's
    `pct_start·T − 1` and `T − 1`:

    ```
    initial = max_learning_rate / div_factor
    final   = initial / final_div_factor
    U       = pct_start * total                      # end of the rise
    t <= U:  learning_rate = anneal(initial, max_learning_rate, t / U)
    t >  U:  learning_rate = anneal(max_learning_rate, final,
                                    min((t - U) / (total - U), 1))
    anneal(a, b, p) = b + (a - b) / 2 * (1 + cos(pi * p))   # "cos"
    anneal(a, b, p) = a + (b - a) * p                       # "linear"
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. After `total` the rate stays at `final`.
    Smith's paper uses linear phases (`anneal_strategy="linear"`); the
    cosine phases are the popular default. The momentum cycle of the paper
    is an optimizer setting, not part of this schedule.

    Args:
        max_learning_rate: A float >= 0, the peak rate (found with an LR range
            test).
        total: An int >= 1, `T`: the whole training run in steps (or epochs).
        pct_start: A float in (0, 1), the fraction of `total` spent rising.
            Defaults to `0.3`.
        div_factor: A float >= 1, `max_learning_rate / initial`. Defaults to
            `25.0`.
        final_div_factor: A float >= 1, `initial / final`. Defaults to `1e4`.
        anneal_strategy: `"cos"` or `"linear"`, the shape of both phases.
            Defaults to `"cos"`.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and `total`
            count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"OneCycle"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `max_learning_rate` is negative, `total < 1`,
            `pct_start` is outside (0, 1), `div_factor < 1`,
            `final_div_factor < 1`, `anneal_strategy` is unknown or
            `steps_per_epoch < 1`.

    Example:

    ```python
    # 10 epochs of 390 steps, peak 0.4 after 3 epochs.
    schedule = kt.schedules.OneCycle(0.4, total=10 * 390)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Smith, 2018](https://arxiv.org/abs/1803.09820), "A disciplined
          approach to neural network hyper-parameters: Part 1".
        - [Smith & Topin, 2017](https://arxiv.org/abs/1708.07120),
          "Super-Convergence".
    """

    def __init__(
        self,
        max_learning_rate,
        total,
        pct_start=0.3,
        div_factor=25.0,
        final_div_factor=1e4,
        anneal_strategy="cos",
        steps_per_epoch=None,
        name="OneCycle",
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "OneCycle"))
        self.max_learning_rate = _base.check_learning_rate(
            "max_learning_rate", max_learning_rate
        )
        self.total = _base.check_positive_int("total", total)
        self.pct_start = _checks.check_real("pct_start", pct_start)
        if not 0.0 < self.pct_start < 1.0:
            raise ValueError(
                "Argument `pct_start` must be in (0, 1). "
                f"Received: pct_start={pct_start}"
            )
        self.div_factor = _checks.check_real("div_factor", div_factor)
        if not (math.isfinite(self.div_factor) and self.div_factor >= 1.0):
            raise ValueError(
                "Argument `div_factor` must be a finite number >= 1. "
                f"Received: div_factor={div_factor}"
            )
        self.final_div_factor = _checks.check_real("final_div_factor", final_div_factor)
        if not (
            math.isfinite(self.final_div_factor) and self.final_div_factor >= 1.0
        ):
            raise ValueError(
                "Argument `final_div_factor` must be a finite number >= 1. "
                f"Received: final_div_factor={final_div_factor}"
            )
        if anneal_strategy not in _ANNEAL_STRATEGIES:
            raise ValueError(
                f"Argument `anneal_strategy` must be one of {_ANNEAL_STRATEGIES}. "
                f"Received: anneal_strategy={anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy

    def _anneal(self, start, end, fraction):
        if self.anneal_strategy == "linear":
            return ops.add(start, ops.multiply(end - start, fraction))
        cosine = ops.add(1.0, ops.cos(ops.multiply(math.pi, fraction)))
        return ops.add(end, ops.multiply((start - end) / 2.0, cosine))

    def _value(self, t, dtype):
        peak = self.max_learning_rate
        initial = peak / self.div_factor
        final = initial / self.final_div_factor
        rise_end = self.pct_start * self.total
        rising = self._anneal(initial, peak, ops.divide(t, rise_end))
        fraction = ops.divide(ops.subtract(t, rise_end), self.total - rise_end)
        falling = self._anneal(peak, final, ops.clip(fraction, 0.0, 1.0))
        value = ops.where(ops.less_equal(t, rise_end), rising, falling)
        return ops.cast(value, dtype)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total": self.total,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal_strategy": self.anneal_strategy,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }
