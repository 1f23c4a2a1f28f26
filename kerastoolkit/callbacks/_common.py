"""Helpers shared by the callbacks: argument checks, the optimizer (the rate
itself is `_rate.py`'s), retracing and the per-epoch state file that lets a run resumed by
`keras.callbacks.BackupAndRestore` continue where it stopped."""

import json
import os
import warnings

import keras
import numpy as np

from kerastoolkit._checks import check_int  # noqa: F401  (used as _common.check_int)
from kerastoolkit._checks import check_real
from kerastoolkit._checks import is_real  # noqa: F401
from kerastoolkit.callbacks import _rate

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
    """The model's innermost optimizer (wrappers unwrapped), or a clear error."""
    return _rate.optimizer_of(callback, model)


def is_schedule(value):
    return isinstance(value, _SCHEDULE)


def current_learning_rate(optimizer):
    """The learning rate the next step uses, a Python float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def retrace(model):
    _rate.retrace(model)


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
        if epoch > 0 and self._state_file.path is not None:
            state, arrays = self._state_file.load(epoch)
            if state is None:
                warnings.warn(
                    f"`{type(self).__name__}` starts at epoch {epoch} but "
                    f"`backup_dir` ({self._state_file.backup_dir}) holds no state "
                    f"saved after epoch {epoch}: it starts afresh. (Its state is "
                    "saved at the end of every epoch: give `BackupAndRestore` "
                    "the same folder, with its default `save_freq=\"epoch\"`.)",
                    stacklevel=2,
                )
            else:
                self._restore_state(state, arrays)
