"""`Warmup`: a linear learning-rate warmup in front of any optimizer's rate."""

import keras
import numpy as np

from kerastoolkit import _callback_common as _common
from kerastoolkit import _rate
from kerastoolkit.schedules.warmup import Warmup as WarmupSchedule


# "WarmupCallback": the name "kerastoolkit>Warmup" belongs to the schedule
# `kt.schedules.Warmup`, which `.keras` files store inside optimizer configs.
@keras.saving.register_keras_serializable(package="kerastoolkit", name="WarmupCallback")
class Warmup(keras.callbacks.Callback):
    """Gradual linear warmup of the learning rate, step by step.

    With `W` warmup steps and the optimizer's own rate `η(step)` (a float or
    any `LearningRateSchedule`), the rate applied at optimizer step `t` is

    ```
    lr(t) = start + (η(0) - start) * t / W     if t < W
            η(t - W)                           otherwise
    ```

    The ramp rises every step (not once per epoch), as in Goyal et al. (2018).
    `warmup_epochs` is converted to steps with the number of steps per epoch
    of the `fit` call. The ramp is a `kt.schedules.Warmup` part of the
    optimizer's rate program (`kerastoolkit/_rate.py`, shared with
    `PlateauDecay` and `SnapshotEnsemble`): on an optimizer built with a
    schedule it wraps the schedule inside the compiled step; on one built with
    a float rate the callback assigns the optimizer's own learning-rate
    variable before every step (as `ReduceLROnPlateau` does), so the optimizer
    keeps its variables, `.keras` checkpoints written mid-training reload with
    their state and `model.export` works. Optimizer wrappers
    (`LossScaleOptimizer` under `mixed_float16`, `kt.optimizers.Lookahead`...)
    are unwrapped to the optimizer that owns the rate. A float rate with
    `steps_per_execution > 1` is refused (the callback would only run every
    few steps). It composes with `PlateauDecay`, `MomentumSchedule` and
    Keras's `EarlyStopping`.
    The optimizer's schedule starts at its own step 0 after the warmup: its
    `decay_steps`/`total` do **not** include the warmup. The step counted is
    the optimizer's `iterations`, so a run resumed by
    `keras.callbacks.BackupAndRestore` continues on the same curve; to
    continue from a float-rate `.keras` checkpoint written mid-warmup (a new
    process), pass `warmup_target` (the saved rate is one reached on the way).
    `logs["learning_rate"]` receives the rate at the end of every epoch.

    Args:
        warmup_steps: int >= 1, `W` in optimizer steps. Give this or
            `warmup_epochs`. Defaults to `None`.
        warmup_epochs: int >= 1, `W` in epochs of the `fit` call (needs a
            known number of steps per epoch). Defaults to `None`.
        start: float >= 0, the rate at step 0. Defaults to `0.0`.
        warmup_target: float >= 0, the rate the warmup rises to on an
            optimizer with a float rate, or `None` for that float when `fit`
            first starts. Needed only to resume mid-warmup from a `.keras`
            checkpoint in a new process; must be `None` with a schedule.
            Defaults to `None`.
        verbose: int, 1 prints the warmup when training starts. Defaults to `0`.

    Raises:
        ValueError: if neither or both of `warmup_steps` and `warmup_epochs`
            are given, or a value is out of range.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=...)
    model.fit(x, y, epochs=20, callbacks=[kt.callbacks.Warmup(warmup_epochs=5)])
    ```

    References:
        - [Goyal et al., 2018](https://arxiv.org/abs/1706.02677), "Accurate,
          Large Minibatch SGD: Training ImageNet in 1 Hour", Section 2.2.
    """

    def __init__(
        self, warmup_steps=None, warmup_epochs=None, start=0.0, warmup_target=None, verbose=0
    ):
        super().__init__()
        if (warmup_steps is None) == (warmup_epochs is None):
            raise ValueError(
                "Give exactly one of `warmup_steps` and `warmup_epochs`. "
                f"Received: warmup_steps={warmup_steps}, warmup_epochs={warmup_epochs}"
            )
        self.warmup_steps = _common.check_int("warmup_steps", warmup_steps, 1, allow_none=True)
        self.warmup_epochs = _common.check_int(
            "warmup_epochs", warmup_epochs, 1, allow_none=True
        )
        self.start = _common.check_float("start", start)
        self.warmup_target = _common.check_float(
            "warmup_target", warmup_target, allow_none=True
        )
        self.verbose = _common.check_int("verbose", verbose, 0)
        self.schedule = None  # the `kt.schedules.Warmup` of the rate program
        self._target = None  # the float base reached (kept for a later `fit`)
        self._left = None  # the float rate this callback left when its `fit` ended
        self._running = False  # between `on_train_begin` and `on_train_end`

    def set_params(self, params):
        super().set_params(params)
        if self._running:
            # The last `fit` stopped on an exception (no `on_train_end`): its
            # rate program is dropped and the rate is back at its base.
            self._running = False
            self._target = self._left = None
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._install(params)

    def _steps(self, params):
        if self.warmup_steps is not None:
            return self.warmup_steps
        steps = (params or {}).get("steps")
        if not steps:
            raise ValueError(
                "`Warmup(warmup_epochs=...)` needs the number of steps per "
                "epoch; pass `steps_per_epoch` to `fit` or use `warmup_steps`. "
                f"Received: warmup_epochs={self.warmup_epochs}, steps={steps}"
            )
        return self.warmup_epochs * int(steps)

    def _install(self, params):
        program = _rate.RateProgram.of(self.model, self)
        steps = self._steps(params)
        start = self.start

        def factory(inner):
            return WarmupSchedule(
                inner, warmup_steps=steps, start=start, name=_rate.MARK + "Warmup"
            )

        if self._left is not None:  # the first install of a later `fit`
            if program.variable is not None and not np.isclose(
                    _rate._to_float(program.variable), self._left, rtol=1e-6):
                self._target = None  # the user set another rate since: it is the target
            self._left = None
        target = self.warmup_target if self.warmup_target is not None else self._target
        if program.variable is None:
            target = None  # the schedule defines the target
        self.schedule = program.register(
            self, factory, "Warmup", per_step=True, base=target
        )
        if program.variable is not None:
            self._target = program.base
        program.check_execution(self.model, self)
        self._program = program
        if self.verbose:
            print(f"Warmup: learning rate from {self.start} over {steps} steps.")

    def on_train_begin(self, logs=None):
        # Again, in case another callback replaced the rate in `set_params`
        # (e.g. `SnapshotEnsemble` listed after this one); a no-op otherwise.
        self._install(self.params)
        self._running = True
        self._program.sync(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._program.sync(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._program.after_step(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self._program.current_rate()

    def on_train_end(self, logs=None):
        self._running = False
        self._program.release(self)
        if self._program.variable is not None:
            self._left = self._program.current_rate()

    def get_config(self):
        return {
            "warmup_steps": self.warmup_steps,
            "warmup_epochs": self.warmup_epochs,
            "start": self.start,
            "warmup_target": self.warmup_target,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
