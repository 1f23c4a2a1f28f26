"""`MomentumSchedule`: drives an optimizer's momentum (β) from a schedule."""

import keras
from kerastoolkit.callbacks import _common


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
    `Nadam`, `Lion`...) can be driven. While `fit` runs, the optimizer's
    attribute is a stand-in whose value is `schedule(optimizer.iterations)`,
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
        optimizer = _common.check_optimizer(self, self.model)
        name = self._attribute(optimizer)
        current = getattr(optimizer, name)
        if isinstance(current, keras.Variable):
            current = float(keras.ops.convert_to_numpy(current))
        if name == "momentum" and isinstance(optimizer, keras.optimizers.SGD) and not current:
            raise ValueError(
                "SGD was created with `momentum=0`, so it keeps no momentum; "
                "create it with a non-zero momentum (e.g. the schedule's first "
                f"value). Received: momentum={current}"
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
        if self.variable is None:
            self.variable = _ScheduledHyperparameter(
                first, dtype="float32", trainable=False, autocast=False, name=name
            )
        self.variable.attach(self.schedule, optimizer, first)
        # Bypass the optimizer's tracker: the value is not optimizer state (it
        # follows from the step), so checkpoints keep their layout.
        object.__setattr__(optimizer, name, self.variable)
        _common.retrace(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self._name] = self._value(self._optimizer.iterations)

    def on_train_end(self, logs=None):
        if self._optimizer is not None:
            object.__setattr__(
                self._optimizer, self._name, self._value(self._optimizer.iterations)
            )
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


class _ScheduledHyperparameter(keras.Variable):
    """An optimizer hyperparameter whose value is `schedule(optimizer.iterations)`.

    Every read (`ops.cast(self.momentum, ...)`, `1 - self.beta_1`...) goes
    through `value`, which evaluates the schedule at the optimizer's current
    step, so inside the compiled train step β is computed in the graph, per
    step, with no Python work (and under JAX from the step's state).
    Keras's optimizers also test the hyperparameter in Python while tracing
    (`if self.momentum != 0:` in SGD, `> 0` in RMSprop): comparisons with a
    Python number use the value when training started (the schedule stays
    > 0, so the traced branch is right).
    """

    python_value = 1.0
    _schedule = None
    _optimizer = None

    def attach(self, schedule, optimizer, python_value):
        self._schedule = schedule
        self._optimizer = optimizer
        self.python_value = float(python_value)

    _cache_key = None
    _cache_value = None

    @property
    def value(self):
        if self._schedule is None:
            return super().value
        # The optimizer reads β once or twice per variable; compute it once
        # per traced step (per graph on TensorFlow, per step-state tracer on
        # JAX) instead of once per read.
        key = _trace_key(self._optimizer)
        if key is not None and key is self._cache_key:
            return self._cache_value
        value = keras.ops.cast(self._schedule(self._optimizer.iterations), "float32")
        if key is not None:
            self._cache_key, self._cache_value = key, value
        return value

    def _compare(self, other, op):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return op(self.python_value, other)
        return NotImplemented

    def __eq__(self, other):
        result = self._compare(other, lambda a, b: a == b)
        return super().__eq__(other) if result is NotImplemented else result

    def __ne__(self, other):
        result = self._compare(other, lambda a, b: a != b)
        return super().__ne__(other) if result is NotImplemented else result

    def __gt__(self, other):
        result = self._compare(other, lambda a, b: a > b)
        return super().__gt__(other) if result is NotImplemented else result

    def __ge__(self, other):
        result = self._compare(other, lambda a, b: a >= b)
        return super().__ge__(other) if result is NotImplemented else result

    def __lt__(self, other):
        result = self._compare(other, lambda a, b: a < b)
        return super().__lt__(other) if result is NotImplemented else result

    def __le__(self, other):
        result = self._compare(other, lambda a, b: a <= b)
        return super().__le__(other) if result is NotImplemented else result

    __hash__ = keras.Variable.__hash__


def _trace_key(optimizer):
    """An object that identifies the step being traced, or `None` when eager."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.compat.v1.get_default_graph() if tf.inside_function() else None
    if backend == "jax":
        import jax

        step = optimizer._iterations.value
        return step if isinstance(step, jax.core.Tracer) else None
    return None
