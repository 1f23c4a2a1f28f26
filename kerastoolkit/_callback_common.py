"""Helpers shared by the callbacks: argument checks, the optimizer (the rate
itself is `_rate.py`'s), retracing and the per-epoch state file that lets a run resumed by
`keras.callbacks.BackupAndRestore` continue where it stopped."""

import json
import os
import re
import warnings
import weakref
import zipfile

import keras
import numpy as np

from kerastoolkit._checks import check_int  # noqa: F401  (used as _common.check_int)
from kerastoolkit._checks import check_real
from kerastoolkit._checks import is_int  # noqa: F401
from kerastoolkit._checks import is_real  # noqa: F401
from kerastoolkit import _rate

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

    Each epoch's state is its own pair of files, `kerastoolkit_<name>-<k>.npz`
    (the arrays) and `kerastoolkit_<name>-<k>.json` (written last: the pair
    is complete when the JSON exists), each written to a temporary name and
    renamed, so a process killed while writing leaves the previous pair
    intact. The last `KEEP` epochs are kept: a backup that lags the callback
    by an epoch (killed between the callback's write and the backup's, or a
    `BackupAndRestore` falling back to its previous checkpoint) still finds
    its state.
    """

    KEEP = 2

    def __init__(self, backup_dir, name):
        self.backup_dir = backup_dir
        self.name = name
        self.prefix = None if backup_dir is None else os.path.join(backup_dir, f"kerastoolkit_{name}-")

    def claim(self, owner):
        """Refuses a second callback of the same `fit` that would share these files.

        Two callbacks writing the same state files would each load the
        other's state on resume. Called at `on_train_begin`, before any state
        is read; a claim left by another `fit` is taken over.
        """
        if self.prefix is None:
            return
        key = os.path.realpath(self.prefix)
        ref = _CLAIMS.get(key)
        other = None if ref is None else ref()
        fit = getattr(owner, "params", None)
        if other is not None and other is not owner and fit is not None and (
            getattr(other, "params", None) is fit
        ):
            raise ValueError(
                f"Two `{type(owner).__name__}` callbacks in this `fit` keep their "
                f"state in the same files ({self.prefix}*) of `backup_dir`: on "
                "resume each would load the other's state. Give each its own "
                f"`backup_dir` (e.g. a subfolder of the BackupAndRestore folder)"
                f"{self._hint(owner)}. Received: backup_dir={self.backup_dir!r}"
            )
        _CLAIMS[key] = weakref.ref(owner)

    @staticmethod
    def _hint(owner):
        return getattr(owner, "_state_file_hint", "")

    def _path(self, epoch, suffix):
        return f"{self.prefix}{int(epoch)}{suffix}"

    def saved_epochs(self):
        """The epochs with a complete saved state, in increasing order."""
        if self.prefix is None or not os.path.isdir(self.backup_dir):
            return []
        base = os.path.basename(self.prefix)
        epochs = []
        for name in os.listdir(self.backup_dir):
            if name.startswith(base) and name.endswith(".json"):
                try:
                    epochs.append(int(name[len(base):-5]))
                except ValueError:
                    continue
        return sorted(epochs)

    def save(self, epoch, state, arrays=None):
        if self.prefix is None:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        npz = self._path(epoch, ".npz")
        with open(npz + ".tmp", "wb") as f:
            np.savez(f, *(arrays or []))
        os.replace(npz + ".tmp", npz)
        path = self._path(epoch, ".json")
        with open(path + ".tmp", "w") as f:
            json.dump({"epoch": int(epoch), "state": state}, f)
        os.replace(path + ".tmp", path)
        for old in self.saved_epochs()[:-self.KEEP]:
            for suffix in (".json", ".npz"):
                try:
                    os.remove(self._path(old, suffix))
                except FileNotFoundError:
                    pass

    def load(self, epoch):
        """The state saved after `epoch` epochs and its arrays, or `(None, None)`."""
        if self.prefix is None or not os.path.exists(self._path(epoch, ".json")):
            return None, None
        try:
            with open(self._path(epoch, ".json")) as f:
                saved = json.load(f)
            with np.load(self._path(epoch, ".npz")) as data:
                arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            warnings.warn(
                f"The state saved after epoch {epoch} in {self.backup_dir} cannot be "
                f"read ({type(error).__name__}: {error}): it is ignored.",
                stacklevel=3,
            )
            return None, None
        return saved["state"], (arrays or None)


_CLAIMS = {}  # realpath of a state-file prefix -> weakref to the callback using it


def state_name(kind, key=None):
    """A state-file name: `kind`, or `kind-key` with `key` made file-name safe."""
    if key is None:
        return kind
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_.]', '_', str(key))}"


class ResumableMixin:
    """Takes up the saved state once per `fit`, by one rule for every callback.

    At the first epoch of a `fit` (`_maybe_resume(epoch)` from
    `on_epoch_begin`), or at `on_train_end` when no epoch ran (a run resumed
    after its last epoch, killed after the last backup but before
    `BackupAndRestore` removed its folder: `_resume_if_no_epoch_ran()`),
    `_resume_at(epoch)` takes up the state saved after `epoch` epochs: by
    default `_restore_state(state, arrays)` with the `StateFile` in
    `self._state_file`; a callback whose state is elsewhere (snapshot files)
    overrides `_resume_at`.
    """

    def _begin_fit(self):
        """At `on_train_begin`: refuses a shared state file, and takes what an
        unfinished earlier `fit` left off the learning rate."""
        self._first_epoch_of_fit = True
        state_file = getattr(self, "_state_file", None)
        if state_file is not None:
            state_file.claim(self)
        _rate.forget_unfinished_fit(self.model, self)

    def _resume_if_no_epoch_ran(self):
        """At `on_train_end`: when no epoch ran (a run resumed after its last
        epoch, killed before `BackupAndRestore` removed its folder), takes
        up the state saved after that epoch."""
        if getattr(self, "_first_epoch_of_fit", False):
            self._maybe_resume((self.params or {}).get("epochs") or 0)

    def _maybe_resume(self, epoch):
        if not getattr(self, "_first_epoch_of_fit", False):
            return
        self._first_epoch_of_fit = False
        self._resume_at(epoch)

    def _resume_at(self, epoch):
        if epoch > 0 and self._state_file.prefix is not None:
            state, arrays = self._state_file.load(epoch)
            if state is None:
                found = self._state_file.saved_epochs()
                warnings.warn(
                    f"`{type(self).__name__}` starts at epoch {epoch} but "
                    f"`backup_dir` ({self._state_file.backup_dir}) holds no state "
                    f"saved after epoch {epoch} (it holds "
                    f"{'states after epochs ' + str(found) if found else 'none'}): it "
                    "starts afresh. (Its state is saved at the end of every epoch: "
                    "give `BackupAndRestore` the same folder.)",
                    stacklevel=3,
                )
            else:
                self._restore_state(state, arrays)
