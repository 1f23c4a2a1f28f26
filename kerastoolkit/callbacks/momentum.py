"""`MomentumSchedule`: drives an optimizer's momentum (β) from a schedule."""

import keras

from kerastoolkit import _keras_compat
from kerastoolkit import _rate
from kerastoolkit import _callback_common as _common
from kerastoolkit.optimizers.sgd import SGD


@keras.saving.register_keras_serializable(package="kerastoolkit")
class MomentumSchedule(keras.callbacks.Callback):
    """Sets the optimizer's momentum `β` from a schedule of the optimizer step.

    For SGD with momentum (`m ← β·m − η·∇L`, `w ← w + m`) the lecture's
    recipe is to start with `β = 0.5` and increase it (e.g. to 0.9 or 0.99)
    once the first large gradients have passed. With `t` the optimizer step,

    ```
    β(t) = schedule(t)
    ```

    and `β(t)` is the value used by step `t`. Any optimizer with a `momentum`
    hyperparameter (`SGD`, `RMSprop`) or a `beta_1` (`Adam`, `AdamW`,
    `Nadam`, `Lion`...) can be driven, and `kt.optimizers.SGD` (whose
    `momentum` takes the schedule itself). Optimizer wrappers
    (`LossScaleOptimizer`, `kt.optimizers.Lookahead`...) are unwrapped.
    An optimizer with neither raises at once. While `fit` runs, a Keras
    optimizer's attribute is a stand-in whose value is `schedule(optimizer.iterations)`,
    computed inside the compiled train step (TensorFlow and JAX alike): no
    per-step Python work. The step is the optimizer's, so a run resumed by
    `keras.callbacks.BackupAndRestore` continues on the same curve. After
    `fit` the attribute is a plain float again (the last value), so the
    optimizer's config stays JSON-safe. `logs[attribute]` receives β at the
    end of every epoch.

    The optimizer must be built with a non-zero momentum (SGD creates no
    momentum slots when `momentum=0`).

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule` of the
            step giving `β` (any toolkit or Keras schedule; for example
            `kt.schedules.Warmup(0.9, warmup_steps=1000, start=0.5)` rises
            linearly from 0.5 to 0.9).
        attribute: `"momentum"`, `"beta_1"` or `"auto"` (the first of the
            two the optimizer has). Defaults to `"auto"`.

    Raises:
        TypeError: if `schedule` is not a `LearningRateSchedule`.
        ValueError: for an unknown `attribute`, an optimizer without it, or
            SGD built with `momentum=0`.

    Example:

    ```python
    beta = kt.schedules.Warmup(0.9, warmup_steps=500, start=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5), loss=...)
    model.fit(x, y, epochs=10, callbacks=[kt.callbacks.MomentumSchedule(beta)])
    ```

    References:
        - [Sutskever et al., 2013](https://proceedings.mlr.press/v28/sutskever13.html),
          "On the importance of initialization and momentum in deep learning".
    """

    def __init__(self, schedule, attribute="auto"):
        super().__init__()
        if not _common.is_schedule(schedule):
            raise TypeError(
                "Argument `schedule` must be a "
                "`keras.optimizers.schedules.LearningRateSchedule` giving β for "
                f"each step. Received: schedule={schedule!r}"
            )
        if attribute not in ("auto", "momentum", "beta_1"):
            raise ValueError(
                "Argument `attribute` must be 'auto', 'momentum' or 'beta_1'. "
                f"Received: attribute={attribute!r}"
            )
        self.schedule = schedule
        self.attribute = attribute
        self.variable = None
        self._optimizer = None

    def _attribute(self, optimizer):
        names = ("momentum", "beta_1") if self.attribute == "auto" else (self.attribute,)
        for name in names:
            if hasattr(optimizer, name):
                return name
        raise ValueError(
            f"The optimizer {type(optimizer).__name__} has no {' or '.join(names)} "
            f"hyperparameter. Received: attribute={self.attribute!r}"
        )

    def _value(self, step):
        return float(keras.ops.convert_to_numpy(self.schedule(step)))

    def on_train_begin(self, logs=None):
        _rate.forget_unfinished_fit(self.model, self)  # a stopped fit's rate parts
        optimizer = _common.check_optimizer(self, self.model)
        name = self._attribute(optimizer)
        current = getattr(optimizer, name)
        native = _accepts_schedule(optimizer, name)
        if native and _common.is_schedule(current):
            current = self._value(optimizer.iterations)
        if isinstance(current, keras.Variable):
            current = float(keras.ops.convert_to_numpy(current))
        if name == "momentum" and not current and isinstance(
            optimizer, (keras.optimizers.SGD, SGD)
        ):
            raise ValueError(
                f"{type(optimizer).__name__} was created with `momentum=0`, so it "
                "keeps no momentum; create it with a non-zero momentum (e.g. "
                f"the schedule's first value). Received: momentum={current}"
            )
        self._optimizer, self._name = optimizer, name
        if not optimizer.built:  # build with the float (SGD tests `momentum != 0`)
            optimizer.build(self.model.trainable_variables)
        first = self._value(optimizer.iterations)
        if first <= 0:
            raise ValueError(
                f"The momentum schedule must stay > 0. Received: {name}={first} "
                f"at step {int(keras.ops.convert_to_numpy(optimizer.iterations))}"
            )
        if native:
            # `kt.optimizers.SGD` takes a schedule for `momentum` (public API).
            setattr(optimizer, name, self.schedule)
        else:
            if self.variable is None:
                self.variable = _keras_compat.ScheduledHyperparameter(
                    first, dtype="float32", trainable=False, autocast=False, name=name
                )
            self.variable.attach(self.schedule, optimizer, first)
            # Not optimizer state (it follows from the step): untracked, so
            # checkpoints keep their layout.
            _keras_compat.install_scheduled_hyperparameter(optimizer, name, self.variable)
        _common.retrace(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self._name] = self._value(self._optimizer.iterations)

    def on_train_end(self, logs=None):
        if self._optimizer is not None:
            last = self._value(self._optimizer.iterations)
            if _accepts_schedule(self._optimizer, self._name):
                setattr(self._optimizer, self._name, last)
            else:
                _keras_compat.remove_scheduled_hyperparameter(self._optimizer, self._name, last)
            _common.retrace(self.model)

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "attribute": self.attribute,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def _accepts_schedule(optimizer, name):
    """Whether the optimizer's own `name` argument may be a schedule."""
    return name == "momentum" and isinstance(optimizer, SGD)
