"""`Scaled`: a schedule times a multiplier that can change during training."""

import keras
import numpy as np
from keras import ops

from kerastoolkit.schedules import _base


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule multiplied by a factor that can change at run time.

    The value at optimizer step `step` is

    ```
    multiplier * schedule(step)
    ```

    `Scaled` is the hook that lets a patience-based decay (for example
    `kt.callbacks.PlateauDecay`) work *together with* a schedule: the callback
    lowers `multiplier` while the schedule keeps its shape, and the optimizer is
    never replaced. (Keras's `ReduceLROnPlateau` instead raises a `TypeError`
    when the learning rate is a schedule, tensorflow#36612.)

    The multiplier lives in a non-trainable float32 `keras.Variable`, so on the
    TensorFlow backend an already traced (or XLA-compiled) train function
    reads the new value on its next step, with no retrace, also under a
    `tf.distribute` strategy. On the JAX backend a traced function captures
    the value as a constant: after changing `multiplier`, call
    `model.make_train_function(force=True)` (`Scaled.needs_retrace()` says
    whether the current backend needs this).

    `get_config()` records the *current* multiplier, so a reduction survives
    `model.save("x.keras")` and `keras.saving.load_model`.

    Args:
        schedule: A float or any `keras.optimizers.schedules.LearningRateSchedule`
            (a Keras built-in or a toolkit schedule).
        multiplier: A float >= 0, the initial factor. Defaults to `1.0`.
        name: String, the name scope of the computation. Defaults to
            `"Scaled"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns `multiplier * schedule(step)`, a scalar float tensor.

    Raises:
        TypeError: if `schedule` is neither a float nor a schedule, or
            `multiplier` is not a number.
        ValueError: if `schedule` is a negative float or `multiplier` is
            negative or not finite.

    Example:

    ```python
    x, y = np.random.rand(64, 3), np.random.rand(64, 1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    schedule = kt.schedules.Scaled(kt.schedules.Cosine(0.1, total=100))
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    model.fit(x, y, epochs=2)
    schedule.multiplier = 0.1  # ten times lower from now on, same shape
    if kt.schedules.Scaled.needs_retrace():
        model.make_train_function(force=True)
    model.fit(x, y, epochs=2)
    ```
    """

    def __init__(self, schedule, multiplier=1.0, name="Scaled"):
        super().__init__()
        self.schedule = _base.check_schedule("schedule", schedule)
        multiplier = _base.check_nonnegative_float("multiplier", multiplier)
        self.name = _base.check_name(name, "Scaled")
        # Created eagerly and untracked by any layer; `autocast=False` keeps it
        # float32 under a mixed-precision policy. Inside a `tf.distribute`
        # scope it becomes a mirrored variable, which may be assigned from the
        # cross-replica context where callbacks run.
        self._multiplier = keras.Variable(
            multiplier,
            dtype="float32",
            trainable=False,
            autocast=False,
            name="lr_multiplier",
        )
        self._assigned = multiplier

    @property
    def multiplier(self):
        """The current factor, a Python float. Assign a float >= 0 to change it.

        Reads the variable; while it still holds the last value assigned
        through this property, that Python float is returned as given (`0.1`,
        not its float32 rounding `0.10000000149`).
        """
        current = float(ops.convert_to_numpy(self._multiplier.value))
        if np.float32(self._assigned) == np.float32(current):
            return self._assigned
        return current

    @multiplier.setter
    def multiplier(self, value):
        value = _base.check_nonnegative_float("multiplier", value)
        self._multiplier.assign(value)
        self._assigned = value

    @staticmethod
    def needs_retrace():
        """Whether a traced train function must be rebuilt to see a new multiplier.

        Returns:
            `True` on the JAX backend (jit captures the value), `False` on
            TensorFlow (and eager backends), which read the variable each step.
        """
        return keras.backend.backend() == "jax"

    def __call__(self, step):
        with keras.name_scope(self.name):
            value = _base.evaluate_schedule(self.schedule, step)
            return ops.multiply(ops.cast(self._multiplier, value.dtype), value)

    def get_config(self):
        return {
            "schedule": _base.serialize_schedule(self.schedule),
            "multiplier": self.multiplier,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _base.deserialize_schedule(config["schedule"])
        return cls(**config)
