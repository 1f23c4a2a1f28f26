"""The user's own optimizer, tried on a copy of the model.

Karpathy's "verify decreasing training loss": a copy of the model, compiled
with a copy of the model's own optimizer (its class, rate or schedule,
momentum, clipping, weight decay, loss scale, wrappers: the optimizer is
rebuilt from its config), trains `K` steps on the first batches `fit` will
feed. The loss of the examples it trained on first is measured before and
after, in training mode with the same random draws (dropout masks,
augmentation), so that only the weights differ between the two:

| verdict | rule (default thresholds) |
| --- | --- |
| `optimizer_nan` | a NaN/Inf loss during or after the trial |
| `optimizer_explodes` | the loss after above `3×` the loss before, or a step loss above it in a trial that did not end more than 5% lower than it began |
| `optimizer_rises` | the loss after more than 5% above the loss before |
| `optimizer_flat` | the loss after less than 0.2% below the loss before (a rate far too low moves it by far less) |

A schedule is evaluated over the run first: one that starts below half of
its peak (a warmup) is tried at its peak, the rate training reaches when
the warmup ends; one that is zero over the whole run is flat by design.
"""

import math

import keras
import numpy as np

from kerastoolkit import _keras_compat
from kerastoolkit import _rate

_SCHEDULE = keras.optimizers.schedules.LearningRateSchedule


def copy_optimizer(optimizer):
    """A new, unbuilt optimizer from `optimizer`'s config, wrappers included.

    `LossScaleOptimizer` and the toolkit's wrappers serialize their inner
    optimizer, so the copy has the same layers of wrapping; the original is
    only read.

    Raises:
        ValueError: when the optimizer cannot be rebuilt from its config.
    """
    try:
        return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    except (TypeError, ValueError, KeyError):
        pass
    try:
        return optimizer.__class__.from_config(optimizer.get_config())
    except (TypeError, ValueError, KeyError, NotImplementedError) as error:
        raise ValueError(
            f"{type(optimizer).__name__} cannot be rebuilt from its config ({error})"
        ) from None


def copy_state(source, target):
    """Gives `target` (built) the variable values of `source`, when they match."""
    if not getattr(source, "built", False):
        return False
    values = [keras.ops.convert_to_numpy(v) for v in source.variables]
    if len(values) != len(target.variables) or any(
            tuple(np.shape(a)) != tuple(v.shape) for a, v in zip(values, target.variables)):
        return False
    for variable, value in zip(target.variables, values):
        variable.assign(value)
    return True


class Plan:
    """The rate the trial runs at: the optimizer's own, or its peak after a warmup.

    Attributes:
        name: the optimizer's class name (the innermost one's, with wrappers).
        rate: the rate at the first step (a float).
        schedule: whether the rate is a `LearningRateSchedule`.
        peak, peak_step: the schedule's largest rate over the run, and where.
        offset: steps to shift the schedule by (the warmup's length), or 0.
        zero: the rate is zero over the whole run.
        horizon: the steps the schedule was read over.
    """

    def __init__(self, optimizer, steps_per_epoch=None, epochs=None):
        base = _rate.base_optimizer(optimizer)
        self.name = _describe(optimizer)
        self.step0 = int(keras.ops.convert_to_numpy(base.iterations))
        learning_rate = _keras_compat.learning_rate_object(base)
        self.schedule = isinstance(learning_rate, _SCHEDULE)
        self.offset, self.zero, self.horizon = 0, False, None
        if not self.schedule:
            self.rate = self.peak = float(keras.ops.convert_to_numpy(learning_rate))
            self.peak_step = self.step0
            self.zero = self.rate == 0.0
            return
        spe = steps_per_epoch or 100
        self.horizon = int(epochs * spe) if epochs else 100 * spe
        steps = self.step0 + _grid(self.horizon)
        values = _evaluate_all(learning_rate, steps)
        values = np.where(np.isfinite(values), values, 0.0)
        self.rate = float(values[0])
        peak = int(np.argmax(values))
        self.peak, self.peak_step = float(values[peak]), int(steps[peak])
        self.zero = self.peak <= 0.0
        if not self.zero and self.rate < 0.5 * self.peak:
            self.offset = self.peak_step - self.step0  # a warmup: try the peak

    def install(self, optimizer):
        """Shifts the copy's schedule by the warmup, when there is one."""
        if self.offset:
            base = _rate.base_optimizer(optimizer)
            base.learning_rate = _Shifted(_keras_compat.learning_rate_object(base), self.offset)

    def rates(self, optimizer, steps):
        """The rates of the copy's first `steps` steps (for the evidence)."""
        base = _rate.base_optimizer(optimizer)
        learning_rate = _keras_compat.learning_rate_object(base)
        if not isinstance(learning_rate, _SCHEDULE):
            return [float(keras.ops.convert_to_numpy(learning_rate))] * steps
        return [_evaluate(learning_rate, self.step0 + i) for i in range(steps)]

    def describe(self):
        if not self.schedule:
            return f"{self.name} at learning rate {self.rate:.3g}"
        text = f"{self.name} with a schedule starting at {self.rate:.3g}"
        if self.zero:
            return text + f", zero over the {self.horizon} steps read"
        if self.offset:
            return text + f" (a warmup: tried at its peak {self.peak:.3g}, step {self.peak_step})"
        return text


def _describe(optimizer):
    names = [type(optimizer).__name__]
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
        names.append(type(optimizer).__name__)
    return names[-1] + ("" if len(names) == 1 else f" (in {', '.join(names[-2::-1])})")


def _grid(horizon):
    """Steps 0..horizon: every step of the first 16, then log-spaced."""
    dense = np.arange(min(16, horizon + 1))
    sparse = np.unique(np.geomspace(16, max(horizon, 16), 32).astype("int64"))
    return np.unique(np.concatenate([dense, sparse[sparse <= horizon]]))


def _evaluate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(np.asarray(step, "int64"))))


def _evaluate_all(schedule, steps):
    """The schedule at every step: in one call when it takes a vector of
    steps (most are elementwise), else one call per step."""
    try:
        values = np.asarray(keras.ops.convert_to_numpy(schedule(np.asarray(steps, "int64"))),
                            "float64")
        if values.shape == np.shape(steps):
            return values
    except Exception:  # noqa: BLE001 - a schedule written for scalar steps only
        pass
    return np.array([_evaluate(schedule, s) for s in steps])


class _Shifted(_SCHEDULE):
    """`schedule(step + offset)`: the copy starts where the warmup ends."""

    def __init__(self, schedule, offset):
        super().__init__()
        self.schedule, self.offset = schedule, int(offset)

    def __call__(self, step):
        return self.schedule(keras.ops.add(step, self.offset))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "offset": self.offset}


# ------------------------------------------------------------------ verdict


def verdict(before, after, step_losses, t):
    """`None` (the loss fell), or one of nan, explodes, rises, flat."""
    losses = np.asarray(step_losses, "float64")
    if not (math.isfinite(before) and math.isfinite(after)) or not np.all(np.isfinite(losses)):
        return "nan"
    scale = max(abs(before), 1e-12)
    fell = after < before - t["trial_rise"] * scale  # by more than 5%
    # A step's loss above the limit is an explosion unless the trial ended
    # lower than it began: Adam's first steps at a high rate can spike once
    # and recover (the loss of `accurate`'s CNN: 3.72, 11.3 at step 2, 1.93).
    if after > t["trial_explode"] * scale or (
            not fell and len(losses) and losses.max() > t["trial_explode"] * scale):
        return "explodes"
    if after > before + t["trial_rise"] * scale:
        return "rises"
    if after > before - t["trial_flat"] * scale:
        return "flat"
    return None


def causes(kind, plan, optimizer, gradient_norms):
    """What in the optimizer's config explains a trial that failed, in words."""
    found = []
    base = _rate.base_optimizer(optimizer)
    if plan.zero:
        found.append("the learning rate is 0 from the first step"
                     + (" over the whole run" if plan.schedule else ""))
    clip = _clipping(base, gradient_norms) if kind == "flat" else None
    if clip:
        found.append(clip)
    decay = getattr(base, "weight_decay", None)
    if kind in ("rises", "explodes") and decay and plan.peak and decay * plan.peak > 0.01:
        found.append(f"weight_decay={decay:g} at rate {plan.peak:.3g} shrinks the weights "
                     f"by {100 * min(decay * plan.peak, 1):.0f}% every step")
    return found


def _clipping(base, gradient_norms):
    if not gradient_norms:
        return None
    largest, total = max(gradient_norms), math.sqrt(sum(g * g for g in gradient_norms))
    for name, limit, against, what in (
            ("clipnorm", base.clipnorm, largest, "each variable's gradient norm (up to"),
            ("global_clipnorm", base.global_clipnorm, total, "the global gradient norm ("),
            ("clipvalue", base.clipvalue, largest, "gradients of norm up to (")):
        if limit and limit > 0 and limit < 1e-3 * against:
            return (f"{name}={limit:g} clips {what} {against:.3g}) to {limit:g}: every "
                    "update is all but zero")
    return None
