"""Helpers shared by the callbacks: argument checks, the optimizer's learning
rate object, retracing and the per-epoch state file that lets a run resumed by
`keras.callbacks.BackupAndRestore` continue where it stopped."""

import json
import os
import warnings

import keras
import numpy as np

from kerastoolkit._checks import check_int  # noqa: F401  (used as _common.check_int)
from kerastoolkit._checks import check_real
from kerastoolkit._checks import is_real  # noqa: F401

_SCHEDULE = keras.optimizers.schedules.LearningRateSchedule


def check_float(name, value, minimum=0.0, maximum=None, allow_none=False):
    """Returns `value` as a finite float in `[minimum, maximum]`."""
    return check_real(name, value, low=minimum, high=maximum, allow_none=allow_none)


def check_backup_dir(value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError(
            "Argument `backup_dir` must be a non-empty path or `None`. "
            f"Received: backup_dir={value!r}"
        )
    return str(value)


def check_optimizer(callback, model):
    """The model's optimizer, or a clear error when the model is not compiled."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"`{type(callback).__name__}` needs a compiled model with an "
            "optimizer. Call `model.compile(optimizer=...)` first."
        )
    if hasattr(optimizer, "inner_optimizer"):  # LossScaleOptimizer
        optimizer = optimizer.inner_optimizer
    return optimizer


def lr_object(optimizer):
    """The optimizer's learning-rate *object*: a schedule or a `keras.Variable`.

    Keras's public `optimizer.learning_rate` returns the current *value*;
    callbacks that wrap the schedule need the object itself.
    """
    return optimizer._learning_rate


def is_schedule(value):
    return isinstance(value, _SCHEDULE)


def schedule_chain(value):
    """`value`, then the schedule it wraps (`.schedule`), and so on."""
    seen = 0
    while value is not None and seen < 64:
        yield value
        value = getattr(value, "schedule", None)
        seen += 1


def base_learning_rate(optimizer):
    """The optimizer's rate as a `Warmup`/`Scaled` argument: a float or a schedule."""
    obj = lr_object(optimizer)
    if is_schedule(obj):
        return obj
    if callable(obj) and not isinstance(obj, keras.Variable):
        raise TypeError(
            "The optimizer's learning rate is a plain callable; kerastoolkit "
            "callbacks need a float or a `LearningRateSchedule`. "
            f"Received: learning_rate={obj!r}"
        )
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def current_learning_rate(optimizer):
    """The learning rate the next step uses, a Python float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


_FLOAT_RATE = "_kerastoolkit_float_rate"


def install_schedule(model, optimizer, schedule):
    """Sets the optimizer's learning rate to `schedule` and drops a traced step.

    A train function traced before holds the old schedule object; it is
    rebuilt so that the next step uses the new one.

    When the optimizer's rate is a float (a `keras.Variable`), Keras's
    `optimizer.learning_rate = schedule` would untrack that variable: the
    optimizer's variable list changes (a checkpoint written before no longer
    lines up) and, on TensorFlow, `model.export` then fails ("Unable to save
    the object ListWrapper(...)", the list had an element removed). So the
    variable stays tracked, the schedule is attached beside it for the
    duration of `fit`, and `restore_float_rate` puts the float back (set to
    the rate reached) when training ends.
    """
    current = lr_object(optimizer)
    if isinstance(current, keras.Variable):
        object.__setattr__(optimizer, _FLOAT_RATE, current)
        object.__setattr__(optimizer, "_learning_rate", schedule)
    else:
        optimizer.learning_rate = schedule
    retrace(model)


def restore_float_rate(model):
    """Puts back a float rate replaced by `install_schedule`, at its last value."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    if hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    variable = getattr(optimizer, _FLOAT_RATE, None)
    if variable is None:
        return
    value = current_learning_rate(optimizer)
    object.__setattr__(optimizer, "_learning_rate", variable)
    object.__setattr__(optimizer, _FLOAT_RATE, None)
    variable.assign(value)
    retrace(model)


def retrace(model):
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def warn_missing_monitor(callback, monitor, logs):
    warnings.warn(
        f"`{type(callback).__name__}` is conditioned on `{monitor}`, which is "
        f"not in the logs. Available: {', '.join(sorted(logs))}. It does "
        "nothing until that metric appears (pass `validation_data` for "
        "`val_*` metrics).",
        stacklevel=3,
    )


def infer_mode(monitor, mode):
    """`"min"` or `"max"`: the direction in which `monitor` improves."""
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    maximised = ("acc", "accuracy", "auc", "precision", "recall", "f1", "iou")
    if any(name == m or name.endswith("_" + m) or name.startswith(m) for m in maximised):
        return "max"
    return "min"


def check_mode(mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(
            "Argument `mode` must be one of 'auto', 'min', 'max'. "
            f"Received: mode={mode!r}"
        )
    return mode


class StateFile:
    """The callback's state at the end of every epoch, next to a backup.

    `keras.callbacks.BackupAndRestore` restores the weights, the optimizer
    (its step counter included) and the epoch, but not a callback's own state
    (best value, patience counter, multiplier...). A callback writes its state
    here after each epoch; when a `fit` starts at an epoch `k > 0` (a resumed
    run), the callback reloads the state written after epoch `k`.
    """

    def __init__(self, backup_dir, name):
        self.backup_dir = backup_dir
        self.path = (
            None if backup_dir is None else os.path.join(backup_dir, f"kerastoolkit_{name}.json")
        )

    def array_path(self, suffix):
        return None if self.backup_dir is None else os.path.join(
            self.backup_dir, os.path.basename(self.path)[:-5] + suffix
        )

    def save(self, epoch, state, arrays=None):
        if self.path is None:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        if arrays is not None:
            np.savez(self.array_path(".npz"), *arrays)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"epoch": int(epoch), "state": state}, f)
        os.replace(tmp, self.path)

    def load(self, epoch):
        """The state saved after `epoch` epochs, or `None`; also its arrays."""
        if self.path is None or not os.path.exists(self.path):
            return None, None
        with open(self.path) as f:
            saved = json.load(f)
        if saved.get("epoch") != int(epoch):
            return None, None
        arrays = None
        array_path = self.array_path(".npz")
        if os.path.exists(array_path):
            with np.load(array_path) as data:
                arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
        return saved["state"], arrays


class ResumableMixin:
    """Calls `_restore_state(state, arrays)` at the first epoch of a resumed `fit`."""

    def _begin_fit(self):
        self._first_epoch_of_fit = True

    def _maybe_resume(self, epoch):
        if not getattr(self, "_first_epoch_of_fit", False):
            return
        self._first_epoch_of_fit = False
        if epoch > 0:
            state, arrays = self._state_file.load(epoch)
            if state is not None:
                self._restore_state(state, arrays)
