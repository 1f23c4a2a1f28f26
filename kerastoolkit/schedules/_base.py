"""Shared argument checks and the step-or-epoch base class of the schedules."""


import keras
from keras import ops

from kerastoolkit import _checks


def check_learning_rate(name, value):
    """Returns `value` as a float; it must be a finite real number >= 0."""
    return _checks.check_real(name, value, low=0.0)


def check_nonnegative_float(name, value):
    """Returns `value` as a float; it must be a finite real number >= 0."""
    return check_learning_rate(name, value)


def check_positive_int(name, value):
    """Returns `value` as an int; it must be an integer >= 1."""
    return _checks.check_int(name, value, 1)


def check_nonnegative_int(name, value):
    """Returns `value` as an int; it must be an integer >= 0."""
    return _checks.check_int(name, value, 0)


def check_steps_per_epoch(value):
    """Returns `None` or a positive int."""
    if value is None:
        return None
    return check_positive_int("steps_per_epoch", value)


def check_name(value, default):
    """Returns the schedule's name (a non-empty string)."""
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"Argument `name` must be a non-empty string. Received: name={value!r}"
        )
    return value


def check_schedule(name, value):
    """Returns a float or a `LearningRateSchedule` (a nested schedule argument)."""
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value
    if _checks.is_real(value):
        return check_learning_rate(name, value)
    raise TypeError(
        f"Argument `{name}` must be a float or a "
        "`keras.optimizers.schedules.LearningRateSchedule`. "
        f"Received: {name}={value!r}"
    )


def serialize_schedule(value):
    """A JSON-safe form of a float or a nested schedule."""
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return keras.saving.serialize_keras_object(value)
    return value


def deserialize_schedule(value):
    """The inverse of `serialize_schedule`."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


def evaluate_schedule(schedule, step):
    """The value of a float or a schedule at `step`, as a float tensor."""
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        value = ops.convert_to_tensor(schedule(step))
    else:
        value = ops.convert_to_tensor(schedule)
    if not keras.backend.is_float_dtype(value.dtype):
        value = ops.cast(value, keras.backend.floatx())
    return value


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base class: a schedule of `t`, the step or the epoch.

    Subclasses implement `_value(t, dtype)` where `t` is a float tensor of
    `dtype`: the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given.
    """

    def __init__(self, steps_per_epoch, name):
        super().__init__()
        self.steps_per_epoch = check_steps_per_epoch(steps_per_epoch)
        self.name = name

    def _t(self, step):
        """The schedule's time `t`: the step, or the epoch it belongs to."""
        step = ops.convert_to_tensor(step)
        if self.steps_per_epoch is not None:
            step = ops.floor_divide(step, self.steps_per_epoch)
        return step

    def _dtype(self):
        return keras.backend.floatx()

    def __call__(self, step):
        with keras.name_scope(self.name):
            dtype = self._dtype()
            t = ops.cast(self._t(step), dtype)
            return self._value(t, dtype)

    def _value(self, t, dtype):
        raise NotImplementedError
