"""The lecture's decay schedules, in steps or in epochs.

Every schedule here is a function of `t`: the optimizer step, or the epoch
`floor(step / steps_per_epoch)` when `steps_per_epoch` is given, so a schedule
can be stated in epochs as the lecture does while the optimizer still calls it
every step. When `steps_per_epoch` is given, counts such as `total` and
`every` are in epochs too.
"""

import math

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.schedules import _base


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Exponential(_base.EpochSchedule):
    """Exponential decay: `η0·exp(−k·t)`.

    ```
    learning_rate(t) = initial_learning_rate * exp(-k * t)
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. Per step this equals
    `keras.optimizers.schedules.ExponentialDecay(initial_learning_rate,
    decay_steps=1, decay_rate=exp(-k))`.

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        k: A float >= 0, the decay rate per step (or per epoch).
        steps_per_epoch: An int >= 1 or `None`. When given, `t` counts epochs.
            Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Exponential"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` or `k` is negative, or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.Exponential(0.1, k=0.05, steps_per_epoch=100)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(
        self, initial_learning_rate, k, steps_per_epoch=None, name="Exponential"
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "Exponential"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.k = _base.check_nonnegative_float("k", k)

    def _value(self, t, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        return ops.multiply(lr, ops.exp(ops.multiply(-self.k, t)))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "k": self.k,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class InverseTime(_base.EpochSchedule):
    """Inverse-time decay: `η0/(1+k·t)`.

    ```
    learning_rate(t) = initial_learning_rate / (1 + k * t)
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. Per step this equals
    `keras.optimizers.schedules.InverseTimeDecay(initial_learning_rate,
    decay_steps=1, decay_rate=k)`.

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        k: A float >= 0, the decay rate per step (or per epoch).
        steps_per_epoch: An int >= 1 or `None`. When given, `t` counts epochs.
            Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"InverseTime"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` or `k` is negative, or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.InverseTime(0.1, k=0.5, steps_per_epoch=100)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    ```
    """

    def __init__(
        self, initial_learning_rate, k, steps_per_epoch=None, name="InverseTime"
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "InverseTime"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.k = _base.check_nonnegative_float("k", k)

    def _value(self, t, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        return ops.divide(lr, ops.add(1.0, ops.multiply(self.k, t)))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "k": self.k,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class InverseSqrt(_base.EpochSchedule):
    """Inverse square-root decay: `η0/sqrt(max(t, 1))`.

    ```
    learning_rate(t) = initial_learning_rate / sqrt(max(t, 1))
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. The rate is `η0` for `t <= 1`. It is usually
    preceded by a warmup: `Warmup(InverseSqrt(η0), warmup_steps=W)`.

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` counts epochs.
            Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"InverseSqrt"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` is negative or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.InverseSqrt(0.01)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    ```

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), the
          "inverse square root" schedule after warmup.
    """

    def __init__(self, initial_learning_rate, steps_per_epoch=None, name="InverseSqrt"):
        super().__init__(steps_per_epoch, _base.check_name(name, "InverseSqrt"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )

    def _value(self, t, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        return ops.divide(lr, ops.sqrt(ops.maximum(t, 1.0)))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Linear(_base.EpochSchedule):
    """Linear decay to zero: `η0·(1 − min(t, T)/T)`.

    ```
    learning_rate(t) = initial_learning_rate * (1 - min(t, total) / total)
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given; the rate stays 0 after `total`. Per step this
    equals `keras.optimizers.schedules.PolynomialDecay(initial_learning_rate,
    decay_steps=total, end_learning_rate=0, power=1)`.

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        total: An int >= 1, `T`: the steps (or epochs) until the rate reaches 0.
            Used inside `Warmup`, it does not include the warmup.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and `total`
            count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Linear"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` is negative, `total < 1` or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.Linear(0.1, total=30, steps_per_epoch=100)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```
    """

    def __init__(
        self, initial_learning_rate, total, steps_per_epoch=None, name="Linear"
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "Linear"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.total = _base.check_positive_int("total", total)

    def _value(self, t, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        fraction = ops.divide(ops.minimum(t, float(self.total)), float(self.total))
        return ops.multiply(lr, ops.subtract(1.0, fraction))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total": self.total,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Cosine(_base.EpochSchedule):
    """Cosine decay to zero: `½·η0·(1 + cos(π·min(t, T)/T))`.

    ```
    learning_rate(t) = 0.5 * initial_learning_rate
                       * (1 + cos(pi * min(t, total) / total))
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given; the rate stays 0 after `total`. Per step this
    equals `keras.optimizers.schedules.CosineDecay(initial_learning_rate,
    decay_steps=total, alpha=0)`. For a warmup in front, wrap it:
    `Warmup(Cosine(η0, total), warmup_steps=W)` (then `total` does not include
    the warmup).

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        total: An int >= 1, `T`: the steps (or epochs) until the rate reaches 0.
            Used inside `Warmup`, it does not include the warmup.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and `total`
            count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Cosine"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` is negative, `total < 1` or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.Cosine(0.1, total=90, steps_per_epoch=500)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Loshchilov & Hutter, 2017](https://arxiv.org/abs/1608.03983)
    """

    def __init__(
        self, initial_learning_rate, total, steps_per_epoch=None, name="Cosine"
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "Cosine"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.total = _base.check_positive_int("total", total)

    def _value(self, t, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        fraction = ops.divide(ops.minimum(t, float(self.total)), float(self.total))
        cosine = ops.add(1.0, ops.cos(ops.multiply(math.pi, fraction)))
        return ops.multiply(ops.multiply(0.5, lr), cosine)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total": self.total,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class StepDecay(_base.EpochSchedule):
    """Step decay: the rate times `factor` every `every` steps (or epochs).

    ```
    learning_rate(t) = initial_learning_rate * factor ** floor(t / every)
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. The lecture's examples: halve every 5 epochs
    (`factor=0.5, every=5`), divide by 10 every 20 epochs (`factor=0.1,
    every=20`), both with `steps_per_epoch`.

    Args:
        initial_learning_rate: A float >= 0, `η0`.
        factor: A float in (0, 1], the multiplier applied at each drop.
        every: An int >= 1, the steps (or epochs) between drops.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and `every`
            count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"StepDecay"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` is negative, `factor` is outside
            (0, 1], `every < 1` or `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.StepDecay(
        0.1, factor=0.1, every=20, steps_per_epoch=390
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```
    """

    def __init__(
        self,
        initial_learning_rate,
        factor,
        every,
        steps_per_epoch=None,
        name="StepDecay",
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "StepDecay"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        if not _checks.is_real(factor):
            raise TypeError(
                f"Argument `factor` must be a float in (0, 1]. "
                f"Received: factor={factor!r}"
            )
        if not 0.0 < float(factor) <= 1.0:
            raise ValueError(
                f"Argument `factor` must be in (0, 1]. Received: factor={factor}"
            )
        self.factor = float(factor)
        self.every = _base.check_positive_int("every", every)

    def _t(self, step):
        # Integer division twice keeps the drop steps exact for large steps.
        return ops.floor_divide(super()._t(step), self.every)

    def _value(self, drops, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        return ops.multiply(lr, ops.power(ops.cast(self.factor, dtype), drops))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "factor": self.factor,
            "every": self.every,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }
