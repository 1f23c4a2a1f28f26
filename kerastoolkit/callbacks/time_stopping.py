"""`TimeStopping`: stop `fit` once a wall-clock budget is spent."""

import time
import warnings

import keras
import numpy as np

from kerastoolkit import _callback_common as _common

_BOUNDARIES = ("epoch", "batch")


def _clock():
    """Seconds on a monotonic clock (immune to changes of the system time)."""
    return time.monotonic()


@keras.saving.register_keras_serializable(package="kerastoolkit")
class TimeStopping(keras.callbacks.Callback):
    """Stops training after `seconds` of wall-clock time, at an epoch or batch boundary.

    The budget starts when `fit` starts (each `fit` call has its own). With
    `boundary="epoch"` (tfa's behaviour) the run stops at the end of the
    first epoch that ends with the budget spent: it can overrun by up to an
    epoch. `anticipate=True` also stops at an epoch end when one more epoch,
    as long as the longest so far, would end past the budget, so the run
    ends within it unless a single epoch is longer than the budget. With
    `boundary="batch"` the check runs after every batch and `fit` stops
    within one batch of the budget; Keras then ends that epoch early (its
    validation and `on_epoch_end` still run, on the partial epoch) and
    returns.

    With `restore_best_weights=True` the weights of the epoch with the best
    `monitor` value are kept (as `keras.callbacks.EarlyStopping` does) and
    put back when the budget stops the run; a run that ends within its
    budget keeps its last weights.

    Attributes after `fit`: `stopped_epoch` (0-based, or `None` if the
    budget was not reached), `stopped_batch` (the batch within that epoch
    with `boundary="batch"`), `elapsed` (seconds when it stopped) and
    `best_epoch`.

    Args:
        seconds: A number > 0, the budget in seconds. Defaults to `86400`
            (a day, tfa's default).
        boundary: `"epoch"` or `"batch"`: where the run may stop. Defaults to
            `"epoch"`.
        anticipate: Whether to also stop when the next epoch (or batch),
            as long as the longest so far, would end past the budget.
            Defaults to `False`.
        restore_best_weights: Whether to restore the weights of the best
            epoch when the budget stops the run. Defaults to `False`.
        monitor: The metric that picks the best epoch. Defaults to
            `"val_loss"`.
        mode: `"auto"`, `"min"` or `"max"`; `"auto"` maximises
            accuracy-like metrics and minimises the others. Defaults to
            `"auto"`.
        verbose: 1 prints a line when the budget stops the run. Defaults to
            `0`.

    Raises:
        ValueError: if `seconds` is not a finite number > 0, `boundary` or
            `mode` is unknown.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    # Train for at most an hour; keep the best epoch's weights.
    stop = kt.callbacks.TimeStopping(3600, restore_best_weights=True)
    model.fit(x, y, validation_split=0.1, epochs=1000, callbacks=[stop])
    ```
    """

    def __init__(self, seconds=86400, boundary="epoch", anticipate=False,
                 restore_best_weights=False, monitor="val_loss", mode="auto",
                 verbose=0):
        super().__init__()
        self.seconds = _common.check_float("seconds", seconds, minimum=0.0)
        if self.seconds == 0.0:
            raise ValueError(
                "Argument `seconds` must be > 0. Received: seconds=0.0"
            )
        if boundary not in _BOUNDARIES:
            raise ValueError(
                f"Argument `boundary` must be one of {_BOUNDARIES}. "
                f"Received: boundary={boundary!r}"
            )
        for name, value in (("anticipate", anticipate),
                            ("restore_best_weights", restore_best_weights)):
            if not isinstance(value, bool):
                raise TypeError(
                    f"Argument `{name}` must be a bool. Received: {name}={value!r}"
                )
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"Argument `monitor` must be a metric name. Received: monitor={monitor!r}"
            )
        self.boundary = boundary
        self.anticipate = anticipate
        self.restore_best_weights = restore_best_weights
        self.monitor = monitor
        self.mode = _common.check_mode(mode)
        self.verbose = _common.check_int("verbose", verbose, 0)
        if boundary == "batch":
            # Only then a per-batch hook: it makes Keras dispatch the batch
            # callbacks synchronously.
            self.on_train_batch_begin = self._on_unit_begin
            self.on_train_batch_end = self._on_batch_end

    def on_train_begin(self, logs=None):
        self._start = _clock()
        self._longest = 0.0
        self._unit_start = self._start
        self._direction = _common.infer_mode(self.monitor, self.mode)
        self._warned = False
        self.stopped_epoch = None
        self.stopped_batch = None
        self.elapsed = None
        self.best = None
        self.best_epoch = None
        self.best_weights = None

    def _on_unit_begin(self, index, logs=None):
        self._unit_start = _clock()

    def _spent(self):
        """Whether to stop now: the budget is spent (or would be, anticipating)."""
        now = _clock()
        self._longest = max(self._longest, now - self._unit_start)
        elapsed = now - self._start
        ahead = self._longest if self.anticipate else 0.0
        return elapsed + ahead >= self.seconds, elapsed

    def _on_batch_end(self, batch, logs=None):
        spent, elapsed = self._spent()
        if spent and self.stopped_epoch is None:
            self.model.stop_training = True
            self.stopped_epoch = self._epoch
            self.stopped_batch = int(batch)
            self.elapsed = elapsed

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)
        if self.boundary == "epoch":
            self._unit_start = _clock()

    def on_epoch_end(self, epoch, logs=None):
        if self.restore_best_weights:
            self._track_best(epoch, logs or {})
        if self.boundary != "epoch" or self.stopped_epoch is not None:
            return
        spent, elapsed = self._spent()
        if spent:
            self.model.stop_training = True
            self.stopped_epoch = int(epoch)
            self.elapsed = elapsed

    def _track_best(self, epoch, logs):
        current = logs.get(self.monitor)
        if current is None:
            if not self._warned:
                self._warned = True
                _common.warn_missing_monitor(self, self.monitor, logs)
            return
        current = float(np.asarray(current))
        better = self.best is None or (
            current < self.best if self._direction == "min" else current > self.best
        )
        if better:
            self.best, self.best_epoch = current, int(epoch)
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.stopped_epoch is None:
            return
        restored = (self.restore_best_weights and self.best_weights is not None
                    and self.best_epoch != self.stopped_epoch)
        if restored:
            self.model.set_weights(self.best_weights)
        if self.restore_best_weights and self.best_weights is None:
            warnings.warn(
                f"TimeStopping: no epoch had `{self.monitor}`; the last weights "
                "are kept.", stacklevel=2)
        if self.verbose:
            where = f"epoch {self.stopped_epoch + 1}"
            if self.stopped_batch is not None:
                where += f", batch {self.stopped_batch + 1}"
            kept = f"; restored the weights of epoch {self.best_epoch + 1}" if restored else ""
            print(f"\nTimeStopping: stopped at {where} after {self.elapsed:.1f} s "
                  f"(budget {self.seconds:g} s){kept}.")

    def get_config(self):
        return {
            "seconds": self.seconds,
            "boundary": self.boundary,
            "anticipate": self.anticipate,
            "restore_best_weights": self.restore_best_weights,
            "monitor": self.monitor,
            "mode": self.mode,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
