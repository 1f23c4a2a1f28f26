"""One mechanism for the learning rate the toolkit's callbacks drive.

`Warmup`, `PlateauDecay` and `SnapshotEnsemble` (and any later callback that
shapes the rate) describe their part of the rate as a *member* of the
optimizer's `RateProgram`: a factory `inner -> LearningRateSchedule` that
wraps the rate below it (`kt.schedules.Warmup`, `kt.schedules.Scaled`), or
replaces it (`kt.schedules.CyclicCosine`). The program composes them,

```
rate = wrapper_n(...wrapper_1(replacement(base)))
```

and applies the result in one of two ways, chosen by the optimizer's own rate:

- **a float rate** (a `keras.Variable`): the variable stays the optimizer's
  rate and is *assigned* `rate(step)` before every step (after each step, for
  the next one), as Keras's `ReduceLROnPlateau` does. The optimizer keeps its
  variables and its config stays a float, so `.keras` checkpoints written
  mid-training load with their state and `model.export` works.
- **a schedule**: the composed schedule is installed on the optimizer (a
  schedule has no variable, so nothing changes in its state).

The optimizer is unwrapped first (`inner_optimizer`, recursively: a
`LossScaleOptimizer` around `kt.optimizers.Lookahead` around `SGD`).

Resuming. The step is the optimizer's `iterations`, so a run resumed by
`BackupAndRestore` continues on the same curve. A `.keras` checkpoint written
mid-training stores, for a float rate, the rate of the next step; a fresh
program that starts at step `k > 0` takes it as the base only where that is
consistent (`rate(k) == base`, e.g. after the warmup). Elsewhere (mid-warmup,
mid-cycle) it cannot tell the base from a rate reached on the way and raises,
asking for the callback's explicit rate argument (`Warmup(warmup_target=...)`,
`SnapshotEnsemble(initial_learning_rate=...)`). For a schedule rate, the
schedules installed by callbacks carry the name prefix `MARK`: a fresh program
strips them to find the user's schedule, and `adopt(kind)` hands a callback the
stripped one's state (`PlateauDecay` continues with the saved multiplier).

API:
    base_optimizer(optimizer) -> the innermost optimizer.
    RateProgram.of(model, callback) -> the program of the model's optimizer.
    program.register(owner, factory, kind, per_step, replace=False, base=None)
        -> the schedule object `factory` built for `owner`.
    program.sync(model): assigns a float rate for the current step.
    program.after_step(model): the same, after each step (per-step programs).
    program.release(owner): at the end of `fit`.
    program.current_rate() -> float, the rate of the next step.
    forget_unfinished_fit(model, callback): at the start of a `fit`, for
        callbacks that do not register a part.

One `fit` at a time. A `fit` is known by the `params` dict Keras hands every
callback of one call (`set_params`); the first `register` of a new `fit`
drops the parts an earlier `fit` left behind without releasing them (it
stopped on an exception: Ctrl-C, a dead worker; Keras then never calls
`on_train_end`), and a float rate goes back to the base those parts started
from (or stays at a rate the user set since). So a new `fit` starts from its
own callbacks only. The parts of a `fit` that ended normally stay in a
schedule rate (they are the model's rate now, saved with it) and a float
rate keeps the value reached, as with Keras's `ReduceLROnPlateau`.
"""

import weakref

import keras
import numpy as np

from kerastoolkit import _keras_compat

_SCHEDULE = keras.optimizers.schedules.LearningRateSchedule
MARK = "kt_callback_"  # name prefix of the schedules callbacks install

_PROGRAMS = weakref.WeakKeyDictionary()


def base_optimizer(optimizer):
    """The optimizer that owns the rate: `inner_optimizer`, unwrapped recursively."""
    for _ in range(64):
        inner = getattr(optimizer, "inner_optimizer", None)
        if inner is None:
            return optimizer
        optimizer = inner
    raise ValueError(f"Optimizer wrappers nest too deeply. Received: optimizer={optimizer!r}")


def optimizer_of(callback, model):
    """The model's innermost optimizer, or a clear error when it is not compiled."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"`{type(callback).__name__}` needs a compiled model with an "
            "optimizer. Call `model.compile(optimizer=...)` first."
        )
    return base_optimizer(optimizer)


def _to_float(value):
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


def _step(optimizer):
    return int(np.asarray(keras.ops.convert_to_numpy(optimizer.iterations)))


def _evaluate(schedule, step):
    if isinstance(schedule, _SCHEDULE):
        return _to_float(schedule(step))
    return float(schedule)


def _describe(optimizer):
    return type(optimizer).__name__


def fit_of(owner):
    """The `params` dict of `owner`'s current `fit` (its identity marks the call), or `None`."""
    return getattr(owner, "params", None)


class _Member:
    def __init__(self, owner, factory, kind, per_step, replace):
        self._owner = weakref.ref(owner)  # the callback holds the model: no cycle to the key
        self.factory = factory
        self.kind = kind
        self.per_step = per_step
        self.replace = replace
        self.schedule = None
        self.fit = fit_of(owner)
        self.released = False  # its `fit` ended (`on_train_end`)

    @property
    def owner(self):
        return self._owner()


class RateProgram:
    """The composed learning rate of one optimizer (see the module docstring)."""

    def __init__(self, optimizer):
        # Weak references: `_PROGRAMS` is keyed weakly by the optimizer, and
        # a value holding the optimizer (or the model, or a callback holding
        # the model) would keep every model trained with a callback alive.
        self._optimizer = weakref.ref(optimizer)
        self._model = None
        obj = _keras_compat.learning_rate_object(optimizer)
        self.adoptable = {}
        if isinstance(obj, keras.Variable):
            self.variable = obj
            self.base = None  # captured at the first `register`
        elif isinstance(obj, _SCHEDULE):
            self.variable = None
            self.base = self._strip(obj)
        else:
            raise TypeError(
                "The optimizer's learning rate is a plain callable; kerastoolkit "
                "callbacks need a float or a `LearningRateSchedule`. "
                f"Received: learning_rate={obj!r}"
            )
        self.explicit_base = None
        self.members = []
        self.top = None
        self._capture = None  # (step, value) read when the base was captured
        self._sync_function = None  # (top, traced update) on TensorFlow
        self._fit = None  # the `params` of the `fit` the members were registered in

    @property
    def optimizer(self):
        return self._optimizer()

    @property
    def model(self):
        return None if self._model is None else self._model()

    @model.setter
    def model(self, model):
        self._model = None if model is None else weakref.ref(model)

    def _strip(self, schedule):
        """The user's schedule below the ones callbacks installed (saved in a checkpoint)."""
        while isinstance(schedule, _SCHEDULE) and str(getattr(schedule, "name", "")).startswith(
            MARK
        ):
            self.adoptable.setdefault(schedule.name[len(MARK):], schedule)
            inner = getattr(schedule, "schedule", None)
            if inner is None:  # a replacement (CyclicCosine): nothing below it
                return schedule
            schedule = inner
        return schedule

    @classmethod
    def of(cls, model, callback):
        """The program of `model`'s (innermost) optimizer, created on first use."""
        optimizer = optimizer_of(callback, model)
        program = _PROGRAMS.get(optimizer)
        if program is not None and not program._still_installed():
            program = None  # the user replaced the rate since
        if program is None:
            program = cls(optimizer)
            _PROGRAMS[optimizer] = program
        program.model = model
        return program

    def _still_installed(self):
        obj = _keras_compat.learning_rate_object(self.optimizer)
        if self.variable is not None:
            return obj is self.variable
        return obj is self.top or (self.top is None and obj is self.base)

    @property
    def per_step(self):
        return any(m.per_step for m in self.members)

    def adopt(self, kind):
        """A schedule of `kind` a checkpoint had installed (then forgotten), or `None`."""
        return self.adoptable.pop(kind, None)

    # --- composition ---------------------------------------------------
    def register(self, owner, factory, kind, per_step, replace=False, base=None):
        """Adds (once per `owner`) a part of the rate and applies the program.

        Args:
            owner: the callback.
            factory: `inner -> LearningRateSchedule`; `inner` is a float or a
                schedule. The schedule's name must start with `MARK + kind`.
            kind: str, e.g. `"Warmup"`.
            per_step: whether the part changes from step to step.
            replace: whether the part replaces the rate below it.
            base: a float base rate given explicitly (`warmup_target`...).

        Returns:
            The schedule built for `owner`.
        """
        self._begin_fit(fit_of(owner))
        if base is not None:
            if self.variable is None:
                raise ValueError(
                    f"`{type(owner).__name__}` was given an explicit learning rate "
                    f"({base}), but the optimizer's rate is a schedule, which "
                    "already defines it. Drop the argument or compile with a "
                    f"float rate. Received: base learning rate={base}"
                )
            self.explicit_base = float(base)
        for member in self.members:
            if member.owner is owner:
                member.fit, member.released = fit_of(owner), False
                return member.schedule
        if replace:
            self.members = [m for m in self.members if not m.replace]
            self.members.insert(0, _Member(owner, factory, kind, per_step, True))
        else:
            self.members.append(_Member(owner, factory, kind, per_step, False))
        self._apply()
        return next(m.schedule for m in self.members if m.owner is owner)

    def _begin_fit(self, fit):
        """At the first `register` of a `fit`: drops what an unfinished one left."""
        if fit is None or fit is self._fit:
            return
        self._fit = fit
        stale = [m for m in self.members if m.fit is not fit and not m.released]
        if not stale:
            return
        self.members = [m for m in self.members if m.fit is fit or m.released]
        if self.variable is not None:
            self._reset_float_base()

    def _reset_float_base(self):
        """After dropping an unfinished `fit`'s parts: the float rate goes back
        to their base, unless the user assigned another rate since."""
        value = _to_float(self.variable)
        if self.top is not None and self.base is not None:
            step = _step(self.optimizer)
            # The program assigned the rate of this step, or of the one
            # before when the `fit` stopped between a step and its callback.
            own = [_evaluate(self.top, t) for t in {step, max(step - 1, 0)}]
            if any(np.isclose(value, v, rtol=1e-6, atol=1e-12) for v in own):
                value = self.base
        self.variable.assign(value)
        self.base = value  # known: no consistency check against the step
        self.explicit_base = None
        self.top = None
        self._capture = None

    def release(self, owner):
        """`owner`'s `fit` ended: a float rate keeps the value reached, without it."""
        if self.variable is None:
            # The composed schedule stays installed (saved with the model).
            for member in self.members:
                if member.owner is owner:
                    member.released = True
            return
        self.members = [m for m in self.members if m.owner is not owner]
        if not self.members:
            self.base = None
            self.explicit_base = None
            self.top = None
            self._capture = None

    def _compose(self, base):
        rate = base
        for member in self.members:
            member.schedule = member.factory(rate)
            rate = member.schedule
        return rate

    def _apply(self):
        if self.variable is None:
            self.top = self._compose(self.base)
            keras_rate = _keras_compat.learning_rate_object(self.optimizer)
            if keras_rate is not self.top:
                self.optimizer.learning_rate = self.top  # schedule -> schedule
            retrace(self.model)
            return
        step = _step(self.optimizer)
        if self.explicit_base is not None:
            self.base = self.explicit_base
        elif self.base is None or (self._capture is not None and self._capture[0] == step):
            value = _to_float(self.variable)
            if self._capture is None or self._capture[0] != step:
                self._capture = (step, value)
            self.base = self._capture[1]
        self.top = self._compose(self.base)
        if (
            self.explicit_base is None
            and self._capture is not None
            and self._capture[0] == step
            and step > 0
        ):
            expected = _evaluate(self.top, step)
            if not np.isclose(expected, self.base, rtol=1e-5, atol=1e-12):
                kinds = " + ".join(m.kind for m in self.members)
                raise ValueError(
                    f"{kinds} starts at optimizer step {step} on "
                    f"{_describe(self.optimizer)} with a float learning rate "
                    f"({self.base:.6g}) that its rate program would not give at "
                    f"this step ({expected:.6g}): the run is resumed (a "
                    "`.keras` checkpoint written mid-warmup or mid-cycle) or "
                    "the callbacks were added to a model trained before. Pass "
                    "the rate explicitly (`Warmup(warmup_target=...)`, "
                    "`SnapshotEnsemble(initial_learning_rate=...)`). "
                    f"Received: learning_rate={self.base:.6g}, iterations={step}"
                )

    # --- applying a float rate -------------------------------------------
    def check_execution(self, model, owner):
        """A per-step float program needs a callback before every step."""
        spe = getattr(model, "steps_per_execution", 1) or 1
        if self.variable is not None and self.per_step and int(spe) > 1:
            raise ValueError(
                f"`{type(owner).__name__}` changes the learning rate every step, "
                f"and {_describe(self.optimizer)}'s rate is a float, which the "
                "callbacks assign before each step; with "
                f"`steps_per_execution={spe}` Keras calls them every {spe} "
                "steps only. Compile with `steps_per_execution=1` or give the "
                "optimizer a schedule (e.g. `keras.optimizers.schedules."
                "PolynomialDecay(lr, 1, lr)`). "
                f"Received: steps_per_execution={spe}"
            )

    def sync(self, model):
        """Assigns the rate of the next step to a float rate's variable."""
        if self.variable is None or self.top is None:
            return
        if keras.backend.backend() == "jax":
            # JAX trains on a copy of the state: write it back to the
            # variables; the next step reads them again (`jax_state_sync`
            # marks the state as synced).
            model.jax_state_sync()
        if keras.backend.backend() == "tensorflow" and isinstance(self.top, _SCHEDULE):
            self._traced_update()()
            return
        self.variable.assign(_evaluate(self.top, _step(self.optimizer)))

    def _traced_update(self):
        """On TensorFlow, one traced call reads the step, evaluates the rate
        and assigns it: done eagerly, each of the three is a separate
        dispatch (under a `MirroredStrategy` the evaluation and the
        assignment cost about 1 ms each, which a per-step callback pays every
        step). Traced again when the composed rate changes."""
        if self._sync_function is None or self._sync_function[0] is not self.top:
            import tensorflow as tf

            top, variable, optimizer = self.top, self.variable, self._optimizer

            def update():
                variable.assign(keras.ops.cast(top(optimizer().iterations), variable.dtype))

            self._sync_function = (top, tf.function(update, autograph=False))
        return self._sync_function[1]

    def after_step(self, model):
        if self.per_step:
            self.sync(model)

    def current_rate(self):
        """The learning rate of the next step, a Python float."""
        return _to_float(self.optimizer.learning_rate)


def forget_unfinished_fit(model, owner):
    """Takes what an unfinished earlier `fit` left off the model's rate.

    For the toolkit's callbacks that do not shape the rate (`SWA`,
    `CurveDiagnostics`, `MomentumSchedule`): a `fit` with them but without
    the stopped `fit`'s rate callbacks also starts from the base rate.
    """
    optimizer = getattr(model, "optimizer", None)
    program = None if optimizer is None else _PROGRAMS.get(base_optimizer(optimizer))
    if program is None or not program._still_installed():
        return
    before = list(program.members)
    program._begin_fit(fit_of(owner))
    if program.variable is None and program.members != before:
        program._apply()  # the schedule without the dropped parts


def retrace(model):
    """Drops a traced train step, so that the next one sees a new schedule."""
    if model is not None and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
