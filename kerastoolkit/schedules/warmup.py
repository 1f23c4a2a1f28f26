"""`Warmup`: a linear warmup in front of any schedule."""

import keras
from keras import ops

from kerastoolkit.schedules import _base


# Registered as "kerastoolkit>Warmup" (it is what `.keras` files store in an
# optimizer's config); the callback `kt.callbacks.Warmup` registers as
# "kerastoolkit>WarmupCallback" so the two never shadow each other.
@keras.saving.register_keras_serializable(package="kerastoolkit")
class Warmup(_base.EpochSchedule):
    """A linear warmup from `start` to `schedule(0)`, then `schedule`, shifted.

    With `W = warmup_steps`:

    ```
    learning_rate(step) = start + (schedule(0) - start) * t / W   if t < W
                          schedule(step - W)                      otherwise
    ```

    `t` is the optimizer step, or the epoch `floor(step / steps_per_epoch)`
    when `steps_per_epoch` is given; then `W` counts epochs, the warmup rises
    once per epoch, and the wrapped schedule is called with
    `step - W * steps_per_epoch` (always in optimizer steps: a wrapped schedule
    that counts epochs has its own `steps_per_epoch`).

    With `steps_per_epoch` the first epoch runs at `start` (the ramp is a
    staircase); for a ramp that rises every step but lasts whole epochs, pass
    `warmup_steps=epochs * steps_per_epoch` and leave `steps_per_epoch` unset.

    The wrapped schedule starts at its own step 0 when the warmup ends, so its
    `total` / `decay_steps` do **not** include the warmup: `Warmup(Cosine(η0,
    total=T), warmup_steps=W)` trains `W + T` steps in all. This is
    Keras's convention too: `Warmup(Cosine(η0, T), W, start=s)` equals
    `keras.optimizers.schedules.CosineDecay(s, T, alpha=0, warmup_target=η0,
    warmup_steps=W)`; `Warmup` puts the same ramp in front of any schedule.

    Goyal et al. (2018) warm up for 5 epochs from a small rate to the linearly
    scaled rate `η0 = 0.1·batch_size/256` when training with large
    mini-batches.

    Args:
        schedule: A float (a constant rate after warmup) or any
            `keras.optimizers.schedules.LearningRateSchedule`, ours or Keras's.
        warmup_steps: An int >= 0, `W`: the length of the warmup, in optimizer
            steps, or in epochs when `steps_per_epoch` is given. 0 means no
            warmup.
        start: A float >= 0, the rate at step 0. Defaults to `0.0`.
        steps_per_epoch: An int >= 1 or `None`. When given, the warmup is
            stated and stepped in epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"Warmup"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if `schedule` is neither a float nor a schedule, or another
            argument has the wrong type.
        ValueError: if `warmup_steps < 0`, `start` is negative or
            `steps_per_epoch < 1`.

    Example:

    ```python
    # Warm up every step for 2 epochs, then 20 epochs of cosine decay stated
    # in epochs (22 epochs in all).
    schedule = kt.schedules.Warmup(
        kt.schedules.Cosine(0.1, total=20, steps_per_epoch=50),
        warmup_steps=2 * 50,
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Goyal et al., 2018](https://arxiv.org/abs/1706.02677), "Accurate,
          Large Minibatch SGD: Training ImageNet in 1 Hour".
    """

    def __init__(
        self,
        schedule,
        warmup_steps,
        start=0.0,
        steps_per_epoch=None,
        name="Warmup",
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "Warmup"))
        self.schedule = _base.check_schedule("schedule", schedule)
        self.warmup_steps = _base.check_nonnegative_int("warmup_steps", warmup_steps)
        self.start = _base.check_learning_rate("start", start)

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.convert_to_tensor(step)
            shift = self.warmup_steps * (self.steps_per_epoch or 1)
            after = _base.evaluate_schedule(
                self.schedule, ops.maximum(ops.subtract(step, shift), 0)
            )
            dtype = after.dtype
            if self.warmup_steps == 0:
                return after
            peak = ops.cast(_base.evaluate_schedule(self.schedule, 0), dtype)
            t = ops.cast(self._t(step), dtype)
            start = ops.cast(self.start, dtype)
            ramp = ops.add(
                start,
                ops.multiply(
                    ops.subtract(peak, start),
                    ops.divide(t, float(self.warmup_steps)),
                ),
            )
            return ops.where(ops.less(t, float(self.warmup_steps)), ramp, after)

    def get_config(self):
        return {
            "schedule": _base.serialize_schedule(self.schedule),
            "warmup_steps": self.warmup_steps,
            "start": self.start,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _base.deserialize_schedule(config["schedule"])
        return cls(**config)
