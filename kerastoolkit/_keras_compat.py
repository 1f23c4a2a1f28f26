"""Every use of Keras internals in kerastoolkit, in one place.

kerastoolkit uses Keras's public API. Where nothing public can do the job, the
code lives here, one section per piece. Each piece says why public API cannot
do it and which upstream issue it works around, is guarded by the Keras
versions it was verified on (`require_keras_version`), and has a test in
`tests/test_keras_compat.py` that fails when Keras changes the internal it
relies on. Other subsystems add their own sections (one heading each).

API:
    require_keras_version(feature): raises `RuntimeError` naming `feature`
        when the installed Keras is outside `VERIFIED_KERAS`.
    learning_rate_object(optimizer): the optimizer's rate *object* (a
        `keras.Variable` for a float rate, or the `LearningRateSchedule`).
    set_untracked_attribute(optimizer, name, value): sets an attribute without
        the optimizer's variable tracker seeing it.
    install_scheduled_hyperparameter(optimizer, name, hyperparameter) and
        remove_scheduled_hyperparameter(optimizer, name, value): put a
        `ScheduledHyperparameter` in place of a float (its config saves the
        float) and back.
    wrap_train_step(model, wrapper), unwrap_train_step(model): run a wrapped
        train step in `fit`, and undo it.
    ScheduledHyperparameter: a `keras.Variable` whose value is a schedule of
        the optimizer's step (a scheduled `momentum`/`beta_1`).
"""

import re

import keras

# --------------------------------------------------------------------------
# Version guard (shared by every section)
# --------------------------------------------------------------------------

# Keras (major, minor) release lines on which every piece below was verified
# by `tests/test_keras_compat.py`. Add a line here only after that test passes.
VERIFIED_KERAS = ((3, 15),)


def keras_version():
    """The installed Keras version as a `(major, minor, patch)` tuple of ints."""
    parts = []
    for part in keras.__version__.split(".")[:3]:
        digits = re.match(r"\d*", part).group()  # "0rc1" -> 0
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def require_keras_version(feature):
    """Raises unless the installed Keras is one `feature`'s internals were verified on.

    Args:
        feature: str, what needs the internal (e.g.
            `"kt.callbacks.MomentumSchedule"`), named in the error.

    Raises:
        RuntimeError: on a Keras version outside `VERIFIED_KERAS`.
    """
    if keras_version()[:2] in VERIFIED_KERAS:
        return
    verified = ", ".join(f"{a}.{b}.x" for a, b in VERIFIED_KERAS)
    raise RuntimeError(
        f"{feature} relies on Keras internals verified on Keras {verified} only "
        f"(see kerastoolkit/_keras_compat.py). Install a verified Keras or run "
        f"tests/test_keras_compat.py against this one and add it to "
        f"VERIFIED_KERAS. Received: keras.__version__={keras.__version__!r}"
    )


# --------------------------------------------------------------------------
# Optimizer learning-rate object
# --------------------------------------------------------------------------
# Why: for a schedule, `optimizer.learning_rate` (public) returns the rate's
# current *value* (the schedule evaluated at `iterations`); the callbacks need
# the *object* (is it a `keras.Variable` to assign, or a `LearningRateSchedule`
# to wrap?). Keras has no public accessor for it; the
# object is `optimizer._learning_rate` (keras/src/optimizers/base_optimizer.py).
# Upstream: tensorflow#36612 (ReduceLROnPlateau cannot tell schedules apart
# either and raises TypeError).


def learning_rate_object(optimizer):
    """The optimizer's learning-rate object: a `keras.Variable` or a schedule."""
    require_keras_version("reading an optimizer's learning-rate object")
    return optimizer._learning_rate


# --------------------------------------------------------------------------
# Untracked optimizer attributes and scheduled hyperparameters
# (kt.callbacks.MomentumSchedule on Keras's SGD, RMSprop, Adam, AdamW...)
# --------------------------------------------------------------------------
# Why: Keras's optimizers read `momentum`/`beta_1` as Python floats baked into
# the traced step, with no schedule argument (keras-team/keras#19258 asks for
# scheduled hyperparameters). To change β per step inside the compiled step,
# the attribute is replaced while `fit` runs by a `keras.Variable` whose
# `value` evaluates the schedule at the optimizer's step. Setting a Variable
# attribute through `Optimizer.__setattr__` would add it to the optimizer's
# tracked variables (its checkpoint layout changes), so it is set with
# `object.__setattr__`. On JAX the step being traced is recognised from the
# traced `optimizer._iterations.value` (public `iterations` is the same
# variable, but may be wrapped in a floor-divide under gradient accumulation).


def set_untracked_attribute(optimizer, name, value):
    """`optimizer.<name> = value`, unseen by the optimizer's variable tracker."""
    require_keras_version("setting an untracked optimizer attribute")
    object.__setattr__(optimizer, name, value)


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


def install_scheduled_hyperparameter(optimizer, name, hyperparameter):
    """Sets `optimizer.<name>` to a `ScheduledHyperparameter`, untracked.

    The optimizer's `get_config` is wrapped on the instance so that a model
    saved while the stand-in is installed (`ModelCheckpoint` mid-training)
    stores the hyperparameter's current float, not the variable (Keras would
    serialize it as a `__tensor__` dict that loads back as a dict).
    """
    set_untracked_attribute(optimizer, name, hyperparameter)
    if "get_config" in vars(optimizer):
        return
    own = type(optimizer).get_config

    def get_config():
        config = own(optimizer)
        for key, value in list(config.items()):
            if isinstance(value, ScheduledHyperparameter):
                config[key] = value.current()
        return config

    object.__setattr__(optimizer, "get_config", get_config)


def remove_scheduled_hyperparameter(optimizer, name, value):
    """Puts the float `value` back as `optimizer.<name>`, and the own `get_config`."""
    set_untracked_attribute(optimizer, name, value)
    if "get_config" in vars(optimizer):
        object.__delattr__(optimizer, "get_config")


class ScheduledHyperparameter(keras.Variable):
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
    _cache_key = None
    _cache_value = None

    def attach(self, schedule, optimizer, python_value):
        require_keras_version("a scheduled optimizer hyperparameter")
        self._schedule = schedule
        self._optimizer = optimizer
        self.python_value = float(python_value)

    def current(self):
        """The value at the optimizer's current step, a Python float."""
        step = self._optimizer.iterations
        return float(keras.ops.convert_to_numpy(self._schedule(step)))

    @property
    def value(self):
        if self._schedule is None:
            return super().value
        # Computed once per traced step instead of once per read.
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


# --------------------------------------------------------------------------
# Patched train step (kt.callbacks.CurveDiagnostics: the batch of the first
# non-finite loss)
# --------------------------------------------------------------------------
# Why: Keras has no public hook *inside* the compiled train step; a callback
# sees the logs after the step, not the batch. To keep the input batch of the
# first non-finite loss, the model's `train_step` is wrapped on the instance
# and the traced `train_function` dropped so that `fit` retraces with it.
# Keras's `make_train_function` calls `self.train_step` (an instance attribute
# shadows the method) and rebuilds when `train_function` is `None`
# (keras/src/backend/tensorflow/trainer.py). Upstream: keras-team/keras#18887
# (a public per-step hook was asked for).


def wrap_train_step(model, wrapper):
    """Makes `fit` run `wrapper(original_train_step)` as the model's train step.

    Args:
        model: a compiled Keras model.
        wrapper: `train_step -> train_step`, given the model's current one.

    Returns:
        The wrapped train step.
    """
    require_keras_version("wrapping a model's train step")
    step = wrapper(model.train_step)
    model.train_step = step
    model.train_function = None  # rebuilt with the wrapped step
    return step


def unwrap_train_step(model):
    """Puts back the model's own `train_step` (undoes `wrap_train_step`)."""
    if "train_step" in vars(model):
        del model.train_step
    model.train_function = None
