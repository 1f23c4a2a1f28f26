"""`PlateauDecay`: reduce-on-plateau that works with any learning-rate schedule."""

import keras
import numpy as np

from kerastoolkit import _callback_common as _common
from kerastoolkit import _rate
from kerastoolkit.schedules.scaled import Scaled


@keras.saving.register_keras_serializable(package="kerastoolkit")
class PlateauDecay(_common.ResumableMixin, keras.callbacks.Callback):
    """Multiplies the learning rate by `factor` when a metric stops improving.

    Like Keras's `ReduceLROnPlateau`, with the same counting rules: after
    every epoch the monitored value `v` improves on the best `b` when
    `v < b - min_delta` (`"min"` mode) or `v > b + min_delta` (`"max"`);
    after `patience` epochs in a row without improvement (outside the
    `cooldown` epochs that follow a reduction) the rate is reduced,

    ```
    lr(step) = multiplier * η(step),     multiplier ← multiplier * factor
    ```

    where `η` is the optimizer's own rate. Unlike Keras's callback (which
    raises `TypeError` on a schedule, tensorflow#36612), `η` may be a float, a
    toolkit schedule or any Keras `LearningRateSchedule`: the callback adds a
    `kt.schedules.Scaled` to the optimizer's rate program
    (`kerastoolkit/_rate.py`, shared with `Warmup` and
    `SnapshotEnsemble`) and lowers its multiplier, so a schedule keeps its
    shape. A float rate stays a float: its variable is assigned, as
    `ReduceLROnPlateau` does, so checkpoints and exports are unchanged.
    Optimizer wrappers (`LossScaleOptimizer`, `kt.optimizers.Lookahead`...)
    are unwrapped to the optimizer that owns the rate. A reduction never takes
    the current rate below `min_lr`, and none happens once the current rate is
    at or below `min_lr`.

    The effective rate (multiplier included) at the end of each epoch, before
    that epoch's reduction, is written to `logs["learning_rate"]`, so
    `history.history["learning_rate"]`, `CSVLogger` and `TensorBoard` (list it
    after this callback) record it.

    Give the same `backup_dir` as `keras.callbacks.BackupAndRestore` (listed
    after this callback) and a killed run that is resumed continues with the
    same multiplier, best value and counters (also when it is resumed after
    its last epoch). Its state files are named after `monitor`: two
    `PlateauDecay` on different metrics may share a folder; two on the same
    metric may not (an error says so).

    Args:
        monitor: the metric name. Defaults to `"val_loss"`.
        factor: float in (0, 1), the multiplier of a reduction. Defaults to `0.1`.
        patience: int >= 0, epochs without improvement before a reduction.
            Defaults to `10`.
        cooldown: int >= 0, epochs after a reduction during which no
            improvement is waited for. Defaults to `0`.
        min_delta: float >= 0, the smallest change that counts as an
            improvement. Defaults to `1e-4`.
        min_lr: float >= 0, lower bound on the learning rate. Defaults to `0.0`.
        mode: `"auto"`, `"min"` or `"max"`; `"auto"` maximises accuracy-like
            metrics (`accuracy`, `auc`, `precision`, `recall`...) and
            minimises the rest. Defaults to `"auto"`.
        restore_best_weights: bool, whether to load the weights of the best
            epoch so far when reducing. Defaults to `False`.
        backup_dir: directory for the callback's state, or `None`. Defaults
            to `None`.
        verbose: int, 1 prints each reduction. Defaults to `0`.

    Raises:
        ValueError: for `factor` outside (0, 1), negative `patience`,
            `cooldown`, `min_delta` or `min_lr`, or an unknown `mode`.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=5000)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss=...)
    history = model.fit(
        x, y, validation_split=0.1, epochs=50,
        callbacks=[kt.callbacks.PlateauDecay(patience=3, factor=0.5)],
    )
    history.history["learning_rate"]
    ```
    """

    _state_file_hint = " or monitor different metrics (each metric has its own state)"

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        cooldown=0,
        min_delta=1e-4,
        min_lr=0.0,
        mode="auto",
        restore_best_weights=False,
        backup_dir=None,
        verbose=0,
    ):
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"Argument `monitor` must be a metric name. Received: monitor={monitor!r}"
            )
        self.monitor = monitor
        if not _common.is_real(factor) or not 0.0 < float(factor) < 1.0:
            raise ValueError(
                "Argument `factor` must be a float in (0, 1): a reduction "
                f"multiplies the learning rate by it. Received: factor={factor}"
            )
        self.factor = float(factor)
        self.patience = _common.check_int("patience", patience, 0)
        self.cooldown = _common.check_int("cooldown", cooldown, 0)
        self.min_delta = _common.check_float("min_delta", min_delta)
        self.min_lr = _common.check_float("min_lr", min_lr)
        self.mode = _common.check_mode(mode)
        if not isinstance(restore_best_weights, bool):
            raise TypeError(
                "Argument `restore_best_weights` must be a bool. "
                f"Received: restore_best_weights={restore_best_weights!r}"
            )
        self.restore_best_weights = restore_best_weights
        self.backup_dir = _common.check_backup_dir(backup_dir)
        self.verbose = _common.check_int("verbose", verbose, 0)
        # One state per monitored metric: two PlateauDecay on different
        # metrics may share a `backup_dir`.
        self._state_file = _common.StateFile(
            self.backup_dir, _common.state_name("plateau_decay", monitor)
        )
        self.scaled = None  # the `kt.schedules.Scaled` whose multiplier is lowered
        self.reductions = []  # epochs (0-based) at whose end the rate was reduced
        self._warned = False
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0
        self.best_weights = None

    # --- installing the multiplier -------------------------------------
    def set_params(self, params):
        super().set_params(params)
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._install()

    def _install(self):
        program = _rate.RateProgram.of(self.model, self)
        adopted = program.adopt("Scaled")  # from a checkpoint written mid-training
        multiplier = 1.0 if adopted is None else adopted.multiplier

        def factory(inner):
            return Scaled(inner, multiplier=multiplier, name=_rate.MARK + "Scaled")

        self.scaled = program.register(self, factory, "PlateauDecay", per_step=False)
        self._program = program

    @property
    def multiplier(self):
        """The current factor on the optimizer's own rate (1.0 before any reduction)."""
        return 1.0 if self.scaled is None else self.scaled.multiplier

    # --- state --------------------------------------------------------
    def _state(self):
        return {
            "best": None if self.best is None else float(self.best),
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
            "multiplier": self.multiplier,
            "reductions": list(self.reductions),
        }

    def _restore_state(self, state, arrays):
        self.best = state["best"]
        self.wait = state["wait"]
        self.cooldown_counter = state["cooldown_counter"]
        self.reductions = list(state["reductions"])
        self._set_multiplier(state["multiplier"])
        if arrays is not None and self.restore_best_weights:
            self.best_weights = arrays

    def _set_multiplier(self, value):
        if self.scaled is None:
            self._install()
        if self.scaled.multiplier != value:
            self.scaled.multiplier = value
            if self._program.variable is not None:
                self._program.sync(self.model)  # a float rate: assign it
            elif Scaled.needs_retrace():
                _rate.retrace(self.model)

    # --- training -----------------------------------------------------
    def on_train_begin(self, logs=None):
        self._reset()
        # Again, in case another callback replaced the rate in `set_params`
        # (e.g. `SnapshotEnsemble` listed after this one); a no-op otherwise.
        self._install()
        self._direction = _common.infer_mode(self.monitor, self.mode)
        self._begin_fit()
        self._program.sync(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_resume(epoch)
        self._program.sync(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._program.after_step(self.model)

    def _improved(self, current):
        if self.best is None:
            return True
        if self._direction == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        lr = self._program.current_rate()
        logs["learning_rate"] = lr
        current = logs.get(self.monitor)
        if current is None:
            if not self._warned:
                self._warned = True
                _common.warn_missing_monitor(self, self.monitor, logs)
        else:
            current = float(np.asarray(current))
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
                self.wait = 0
            if self._improved(current):
                self.best = current
                self.wait = 0
                if self.restore_best_weights:
                    self.best_weights = self.model.get_weights()
            elif self.cooldown_counter == 0:
                self.wait += 1
                if self.wait >= self.patience:
                    self._reduce(epoch, lr)
        self._state_file.save(
            epoch + 1,
            self._state(),
            self.best_weights if self.restore_best_weights else None,
        )

    def on_train_end(self, logs=None):
        self._resume_if_no_epoch_ran()
        self._program.release(self)

    def _reduce(self, epoch, lr):
        if not lr > np.float32(self.min_lr):
            return
        multiplier = self.multiplier
        new = multiplier * self.factor
        if lr * self.factor < self.min_lr and lr > 0:
            new = multiplier * self.min_lr / lr
        self._set_multiplier(new)
        self.cooldown_counter = self.cooldown
        self.wait = 0
        self.reductions.append(int(epoch))
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        if self.verbose:
            print(
                f"\nEpoch {epoch + 1}: PlateauDecay: learning rate x{new / multiplier:.4g} "
                f"(multiplier {new:.4g})."
            )

    def get_config(self):
        return {
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "cooldown": self.cooldown,
            "min_delta": self.min_delta,
            "min_lr": self.min_lr,
            "mode": self.mode,
            "restore_best_weights": self.restore_best_weights,
            "backup_dir": self.backup_dir,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

