"""`Warmup`: a linear learning-rate warmup in front of any optimizer's rate."""

import keras

from kerastoolkit.callbacks import _common
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
    of the `fit` call. The callback does this by wrapping the optimizer's rate
    in a `kt.schedules.Warmup` when `fit` starts, so the rate is computed
    inside the compiled train step (no per-step Python work) and it composes
    with `PlateauDecay`, `MomentumSchedule` and Keras's `EarlyStopping`.
    The optimizer's schedule starts at its own step 0 after the warmup: its
    `decay_steps`/`total` do **not** include the warmup. The step counted is
    the optimizer's `iterations`, so a run resumed by
    `keras.callbacks.BackupAndRestore` continues on the same curve.
    `logs["learning_rate"]` receives the rate at the end of every epoch.
    An optimizer created with a float rate has a float rate again after
    `fit` (the last value), so the model saves, loads and exports as usual.

    Args:
        warmup_steps: int >= 1, `W` in optimizer steps. Give this or
            `warmup_epochs`. Defaults to `None`.
        warmup_epochs: int >= 1, `W` in epochs of the `fit` call (needs a
            known number of steps per epoch). Defaults to `None`.
        start: float >= 0, the rate at step 0. Defaults to `0.0`.
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

    def __init__(self, warmup_steps=None, warmup_epochs=None, start=0.0, verbose=0):
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
        self.verbose = _common.check_int("verbose", verbose, 0)
        self.schedule = None  # the installed `kt.schedules.Warmup`

    def set_params(self, params):
        super().set_params(params)
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
        optimizer = _common.check_optimizer(self, self.model)
        current = _common.lr_object(optimizer)
        if self.schedule is not None and any(
            s is self.schedule for s in _common.schedule_chain(current)
        ):
            return  # already installed (a second `fit`)
        steps = self._steps(params)
        self.schedule = WarmupSchedule(
            _common.base_learning_rate(optimizer), warmup_steps=steps, start=self.start
        )
        _common.install_schedule(self.model, optimizer, self.schedule)
        if self.verbose:
            print(f"Warmup: learning rate from {self.start} over {steps} steps.")

    def on_train_begin(self, logs=None):
        # Again, in case another callback replaced the rate in `set_params`
        # (e.g. `SnapshotEnsemble` listed after this one); a no-op otherwise.
        self._install(self.params)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            optimizer = _common.check_optimizer(self, self.model)
            logs["learning_rate"] = _common.current_learning_rate(optimizer)

    def on_train_end(self, logs=None):
        _common.restore_float_rate(self.model)

    def get_config(self):
        return {
            "warmup_steps": self.warmup_steps,
            "warmup_epochs": self.warmup_epochs,
            "start": self.start,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
