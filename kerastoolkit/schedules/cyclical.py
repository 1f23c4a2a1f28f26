"""Cyclical learning rates (Smith, 2017): triangular, triangular2, exp_range."""

import inspect

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.schedules import _base

_SCALE_MODES = ("cycle", "iterations")


def _check_step_size(value):
    return _checks.check_real("step_size", value, low=0.0, low_open=True)


def _check_scale_mode(value):
    if value not in _SCALE_MODES:
        raise ValueError(
            f"Argument `scale_mode` must be one of {_SCALE_MODES}. "
            f"Received: scale_mode={value!r}"
        )
    return value


def _check_scale_fn(scale_fn):
    """Returns `scale_fn` if Keras can save it and load it back.

    A schedule is saved inside the optimizer's config (every `.keras`
    checkpoint), so a scale function that cannot be deserialized would
    break the first checkpoint of a long run: refuse it at once instead.
    """
    if not callable(scale_fn):
        raise TypeError(
            "Argument `scale_fn` must be a callable. "
            f"Received: scale_fn={scale_fn!r}"
        )
    how = (
        "Use a module-level function decorated with "
        "`@keras.saving.register_keras_serializable()` (or a registered "
        "class with `get_config`), so that a model trained with this "
        "schedule can be saved and loaded."
    )
    if getattr(scale_fn, "__name__", None) == "<lambda>":
        raise ValueError(
            f"Argument `scale_fn` cannot be a lambda: Keras cannot load it back "
            f"safely. {how} Received: scale_fn={scale_fn!r}"
        )
    try:
        config = keras.saving.serialize_keras_object(scale_fn)
        rebuilt = keras.saving.deserialize_keras_object(config)
    except Exception as error:  # Keras raises several types here.
        raise ValueError(
            f"Argument `scale_fn` does not serialize ({error}). {how} "
            f"Received: scale_fn={scale_fn!r}"
        ) from error
    if inspect.isfunction(scale_fn) or inspect.isbuiltin(scale_fn):
        same = rebuilt is scale_fn
    else:
        same = type(rebuilt) is type(scale_fn)
    if not same:
        raise ValueError(
            f"Argument `scale_fn` does not load back as itself. {how} "
            f"Received: scale_fn={scale_fn!r}"
        )
    return scale_fn


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Cyclical(_base.EpochSchedule):
    """A cyclical learning rate with any amplitude scaling (Smith, 2017).

    The rate goes linearly from `initial_learning_rate` up to
    `maximal_learning_rate` in `step_size` steps and back down in as many;
    `scale_fn` scales the amplitude of each cycle. With `η0 =
    initial_learning_rate`, `η1 = maximal_learning_rate` and `s = step_size`:

    ```
    cycle = floor(1 + t / (2 s))                 # 1, 2, 3, ...
    x     = |t / s − 2·cycle + 1|                # 1 → 0 → 1 within a cycle
    learning_rate(t) = η0 + (η1 − η0) · max(0, 1 − x) · scale_fn(u)
    u = cycle  (scale_mode="cycle")   or   u = t  (scale_mode="iterations")
    ```

    `t` is the optimizer step (0 at the first update), or the epoch
    `floor(step / steps_per_epoch)` when `steps_per_epoch` is given (then
    `step_size` counts epochs). Each cycle starts and ends at `η0`; the
    peak `η0 + (η1 − η0)·scale_fn(u)` is reached at `t = s, 3s, 5s, ...`.
    This is the formula of Smith's paper (Section 3.1) and of
    `tfa.optimizers.CyclicalLearningRate`, which this class replaces with
    the same arguments. `Triangular`, `Triangular2` and `ExponentialRange`
    are the paper's three policies.

    `scale_fn` receives a float tensor (`u`) and must return a scalar: write
    it with `keras.ops` so that it runs inside the compiled train step. The
    schedule is saved inside the optimizer's config, so `scale_fn` must be a
    function Keras can load back (registered with
    `@keras.saving.register_keras_serializable()`); a lambda is refused when
    the schedule is built, not when the first checkpoint is written.

    Args:
        initial_learning_rate: A float >= 0, `η0`, the rate at the start and
            end of every cycle (Smith's `base_lr`).
        maximal_learning_rate: A float >= 0, `η1`, the peak of an unscaled
            cycle (Smith's `max_lr`; found with an LR range test).
        step_size: A number > 0, `s`: steps (or epochs) in half a cycle.
            Smith suggests 2 to 10 times the steps in an epoch.
        scale_fn: A registered function of one float tensor returning the
            amplitude factor of a cycle.
        scale_mode: `"cycle"` (`scale_fn` gets the cycle number, from 1) or
            `"iterations"` (it gets `t`). Defaults to `"cycle"`.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and
            `step_size` count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Cyclical"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a rate is negative, `step_size <= 0`, `scale_mode` is
            unknown, `steps_per_epoch < 1`, or `scale_fn` cannot be saved
            and loaded back (a lambda, a function Keras cannot find).

    Example:

    ```python
    @keras.saving.register_keras_serializable(package="my_project")
    def halve_every_other_cycle(cycle):
        return keras.ops.power(0.5, keras.ops.floor((cycle - 1) / 2))

    schedule = kt.schedules.Cyclical(1e-4, 1e-2, step_size=2000,
                                     scale_fn=halve_every_other_cycle)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
          Rates for Training Neural Networks", WACV, Section 3.1.
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        scale_fn,
        scale_mode="cycle",
        steps_per_epoch=None,
        name="Cyclical",
    ):
        self._init_common(
            initial_learning_rate, maximal_learning_rate, step_size,
            scale_mode, steps_per_epoch, name, "Cyclical",
        )
        self.scale_fn = _check_scale_fn(scale_fn)

    def _init_common(self, initial_learning_rate, maximal_learning_rate,
                     step_size, scale_mode, steps_per_epoch, name, default):
        super().__init__(steps_per_epoch, _base.check_name(name, default))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.maximal_learning_rate = _base.check_learning_rate(
            "maximal_learning_rate", maximal_learning_rate
        )
        self.step_size = _check_step_size(step_size)
        self.scale_mode = _check_scale_mode(scale_mode)

    def _scale(self, u, dtype):
        return ops.cast(self.scale_fn(u), dtype)

    def _value(self, t, dtype):
        step_size = ops.cast(self.step_size, dtype)
        cycle = ops.floor(ops.add(1.0, ops.divide(t, 2.0 * self.step_size)))
        x = ops.abs(ops.add(ops.subtract(ops.divide(t, step_size),
                                         ops.multiply(2.0, cycle)), 1.0))
        triangle = ops.maximum(ops.subtract(1.0, x), 0.0)
        u = cycle if self.scale_mode == "cycle" else t
        amplitude = self.maximal_learning_rate - self.initial_learning_rate
        value = ops.add(
            self.initial_learning_rate,
            ops.multiply(ops.multiply(amplitude, triangle), self._scale(u, dtype)),
        )
        return ops.cast(value, dtype)

    def _common_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "scale_mode": self.scale_mode,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }

    def get_config(self):
        config = self._common_config()
        config["scale_fn"] = keras.saving.serialize_keras_object(self.scale_fn)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["scale_fn"] = keras.saving.deserialize_keras_object(config["scale_fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Triangular(Cyclical):
    """Smith's "triangular" policy: every cycle from `η0` to `η1` and back.

    `Cyclical` with `scale_fn(u) = 1`:

    ```
    cycle = floor(1 + t / (2 s));  x = |t / s − 2·cycle + 1|
    learning_rate(t) = η0 + (η1 − η0) · max(0, 1 − x)
    ```

    Replaces `tfa.optimizers.TriangularCyclicalLearningRate` (same
    arguments; `scale_mode` has no effect on a constant scale and is not an
    argument here).

    Args:
        initial_learning_rate: A float >= 0, `η0` (Smith's `base_lr`).
        maximal_learning_rate: A float >= 0, `η1` (Smith's `max_lr`).
        step_size: A number > 0, `s`: steps (or epochs) in half a cycle.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and
            `step_size` count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Triangular"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a rate is negative, `step_size <= 0` or
            `steps_per_epoch < 1`.

    Example:

    ```python
    # 100 steps per epoch; a cycle lasts 8 epochs.
    schedule = kt.schedules.Triangular(1e-3, 6e-3, step_size=400)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
          Rates for Training Neural Networks", Section 3.1.
    """

    def __init__(self, initial_learning_rate, maximal_learning_rate, step_size,
                 steps_per_epoch=None, name="Triangular"):
        self._init_common(
            initial_learning_rate, maximal_learning_rate, step_size,
            "cycle", steps_per_epoch, name, "Triangular",
        )

    def _scale(self, u, dtype):
        return ops.ones((), dtype)

    def get_config(self):
        config = self._common_config()
        del config["scale_mode"]
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Triangular2(Cyclical):
    """Smith's "triangular2" policy: the amplitude halves every cycle.

    `Cyclical` with `scale_fn(cycle) = 1 / 2^(cycle − 1)` (cycle 1, 2, 3...)
    and `scale_mode="cycle"`:

    ```
    learning_rate(t) = η0 + (η1 − η0) · max(0, 1 − x) / 2^(cycle − 1)
    ```

    Replaces `tfa.optimizers.Triangular2CyclicalLearningRate`. tfa's
    `scale_mode="iterations"` (halving the amplitude every *step*, which
    makes it vanish within a cycle) is not offered; use `Cyclical` with your
    own scale function for that.

    Args:
        initial_learning_rate: A float >= 0, `η0` (Smith's `base_lr`).
        maximal_learning_rate: A float >= 0, `η1`, the peak of the first
            cycle.
        step_size: A number > 0, `s`: steps (or epochs) in half a cycle.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and
            `step_size` count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Triangular2"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a rate is negative, `step_size <= 0` or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.Triangular2(1e-3, 6e-3, step_size=400)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
          Rates for Training Neural Networks", Section 3.1.
    """

    def __init__(self, initial_learning_rate, maximal_learning_rate, step_size,
                 steps_per_epoch=None, name="Triangular2"):
        self._init_common(
            initial_learning_rate, maximal_learning_rate, step_size,
            "cycle", steps_per_epoch, name, "Triangular2",
        )

    def _scale(self, cycle, dtype):
        return ops.cast(ops.power(0.5, ops.subtract(cycle, 1.0)), dtype)

    def get_config(self):
        config = self._common_config()
        del config["scale_mode"]
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class ExponentialRange(Cyclical):
    """Smith's "exp_range" policy: the amplitude decays as `gamma^t`.

    `Cyclical` with `scale_fn(u) = gamma^u`:

    ```
    learning_rate(t) = η0 + (η1 − η0) · max(0, 1 − x) · gamma^u
    u = t (scale_mode="iterations", Smith's policy) or cycle ("cycle")
    ```

    Replaces `tfa.optimizers.ExponentialCyclicalLearningRate` (same
    arguments and defaults, `scale_mode="iterations"`).

    Args:
        initial_learning_rate: A float >= 0, `η0` (Smith's `base_lr`).
        maximal_learning_rate: A float >= 0, `η1` (Smith's `max_lr`).
        step_size: A number > 0, `s`: steps (or epochs) in half a cycle.
        gamma: A float in `(0, 1]`, the decay of the amplitude per step (or
            per cycle). Defaults to `1.0` (no decay, as in tfa; Smith's
            experiments use values such as `0.99994`).
        scale_mode: `"iterations"` (`gamma^t`) or `"cycle"`
            (`gamma^cycle`). Defaults to `"iterations"`.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and
            `step_size` count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"ExponentialRange"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a rate is negative, `step_size <= 0`, `gamma` is
            outside `(0, 1]`, `scale_mode` is unknown or
            `steps_per_epoch < 1`.

    Example:

    ```python
    schedule = kt.schedules.ExponentialRange(1e-3, 6e-3, step_size=400,
                                             gamma=0.9995)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
          Rates for Training Neural Networks", Section 3.1.
    """

    def __init__(self, initial_learning_rate, maximal_learning_rate, step_size,
                 gamma=1.0, scale_mode="iterations", steps_per_epoch=None,
                 name="ExponentialRange"):
        self._init_common(
            initial_learning_rate, maximal_learning_rate, step_size,
            scale_mode, steps_per_epoch, name, "ExponentialRange",
        )
        self.gamma = _checks.check_real("gamma", gamma, low=0.0, high=1.0,
                                        low_open=True)

    def _scale(self, u, dtype):
        return ops.cast(ops.power(ops.cast(self.gamma, u.dtype), u), dtype)

    def get_config(self):
        config = self._common_config()
        config["gamma"] = self.gamma
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
