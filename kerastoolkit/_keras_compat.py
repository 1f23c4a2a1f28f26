"""Every use of Keras internals in kerastoolkit, in one place.

kerastoolkit uses Keras's public API. Where nothing public can do the job, the
code lives here, one section per piece. Each piece says why public API cannot
do it and which upstream issue it works around, is guarded by the Keras
versions it was verified on (`require_keras_version`), and has a test in
`tests/test_keras_compat.py` that fails when Keras changes the internal it
relies on. Other subsystems add their own sections (one heading each).

One policy for a Keras outside `VERIFIED_KERAS`: warn once
(`UnverifiedKerasWarning`, naming the version and the verified lines), try the
internal, and raise `KerasInternalChanged` (a `RuntimeError`) only where it is
actually missing or different.

API:
    require_keras_version(feature): warns once on an unverified Keras;
        returns whether the installed Keras is verified.
    internal_changed(feature, internal, error): the error a piece raises.
    variable_index(optimizer, variable), built_variables(optimizer),
        backend_update_step(parent, grads, variables, learning_rate),
        normal_from_seed(shape, seed, stddev, dtype): what custom optimizers
        need beyond Keras's documented subclassing API.
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
import warnings

import keras

# --------------------------------------------------------------------------
# Version guard and the policy for an unverified Keras (shared by every section)
# --------------------------------------------------------------------------
# One policy for every piece below. On a Keras release line in
# `VERIFIED_KERAS` the pieces run silently. On any other version (setup.cfg
# allows `keras<4`) the toolkit warns once per process, naming the version and
# the verified lines, and then tries the internal anyway: a piece raises
# `KerasInternalChanged` (a `RuntimeError` naming the feature, the internal
# and the version) only where the internal is actually missing or different.
# So `kt.preflight.check` runs on a newer Keras whose internals did not move,
# and nothing runs unchecked where they did.

# Keras (major, minor) release lines on which every piece below was verified
# by `tests/test_keras_compat.py`. Add a line here only after that test passes.
VERIFIED_KERAS = ((3, 15),)

_WARNED_VERSIONS = set()


class UnverifiedKerasWarning(UserWarning):
    """The installed Keras is not one the toolkit's uses of internals were verified on."""


class KerasInternalChanged(RuntimeError):
    """A Keras internal the toolkit relies on is missing or different."""


def keras_version():
    """The installed Keras version as a `(major, minor, patch)` tuple of ints."""
    parts = []
    for part in keras.__version__.split(".")[:3]:
        digits = re.match(r"\d*", part).group()  # "0rc1" -> 0
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def _verified_lines():
    return ", ".join(f"{a}.{b}.x" for a, b in VERIFIED_KERAS)


def require_keras_version(feature):
    """Checks the installed Keras against `VERIFIED_KERAS`; warns once if it is not one.

    Nothing happens on a verified Keras. On another version an
    `UnverifiedKerasWarning` naming the version, the verified release lines
    and `feature` is issued once per process (per version); the caller then
    tries the internal, and `internal_changed` reports it if it is missing.

    Args:
        feature: str, what needs the internal (e.g.
            `"kt.callbacks.MomentumSchedule"`), named in the warning.

    Returns:
        Whether the installed Keras is a verified one.
    """
    if keras_version()[:2] in VERIFIED_KERAS:
        return True
    if keras.__version__ not in _WARNED_VERSIONS:
        _WARNED_VERSIONS.add(keras.__version__)
        warnings.warn(
            f"kerastoolkit's uses of Keras internals (kerastoolkit/_keras_compat.py) were "
            f"verified on Keras {_verified_lines()}; this is Keras {keras.__version__}. "
            f"They are tried anyway (first: {feature}), and each raises a clear error if "
            "the internal it needs has changed. Run tests/test_keras_compat.py against "
            "this Keras and add it to VERIFIED_KERAS once it passes.",
            UnverifiedKerasWarning,
            stacklevel=3,
        )
    return False


def internal_changed(feature, internal, error=None):
    """The `KerasInternalChanged` error for `feature` whose `internal` is missing or different.

    Args:
        feature: str, what needs the internal.
        internal: str, the internal (e.g. `"Optimizer._get_variable_index"`).
        error: the exception met when using it, or `None`.
    """
    detail = f" ({type(error).__name__}: {error})" if error is not None else ""
    return KerasInternalChanged(
        f"{feature} relies on the Keras internal `{internal}`, which this Keras does not "
        f"have as kerastoolkit expects{detail}. kerastoolkit was verified on Keras "
        f"{_verified_lines()} (see kerastoolkit/_keras_compat.py): install one of those, "
        f"or a kerastoolkit that supports this Keras. Received: keras.__version__={keras.__version__!r}"
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
    feature = "reading an optimizer's learning-rate object"
    require_keras_version(feature)
    try:
        rate = optimizer._learning_rate
    except AttributeError as error:
        raise internal_changed(feature, "Optimizer._learning_rate", error) from None
    schedule = keras.optimizers.schedules.LearningRateSchedule
    if not (isinstance(rate, (keras.Variable, schedule)) or callable(rate)):
        raise internal_changed(feature, f"Optimizer._learning_rate (found {type(rate).__name__})")
    return rate


# --------------------------------------------------------------------------
# Custom optimizers (kt.optimizers): a variable's slots, the variables an
# optimizer was built with, one value per step, a seed computed in the step
# --------------------------------------------------------------------------
# Why: Keras documents subclassing `Optimizer.build`/`update_step`, but
# `update_step(gradient, variable, learning_rate)` gets one model variable and
# nothing public finds its slot variables: Keras's own optimizers use
# `Optimizer._get_variable_index(variable)`, which also maps a distributed
# variable's per-device component to its index (TensorFlow's `_var_key`).
# A wrapper optimizer's `apply(grads)` is called without the variables (JAX's
# `stateless_apply` does so); they are the list the optimizer was built with,
# `Optimizer._trainable_variables`. `kt.optimizers.SGD` evaluates a momentum
# schedule once per step by passing it with the rate through
# `Optimizer._backend_update_step` (on TensorFlow the rate is carried through
# the distribution strategy's `merge_call` there). `GradientNoise` draws noise
# from a seed computed from the step inside the traced step: `keras.random`
# takes a Python int (a constant in the trace) or a `SeedGenerator`, whose
# `next()` is all `draw_seed` calls; `SeedGenerator.__init__` would create a
# state variable, which a jitted JAX step cannot create and which is not
# needed, so the stand-in skips it.


def variable_index(optimizer, variable):
    """The index of `variable` among the variables `optimizer` was built with."""
    feature = f"{type(optimizer).__name__}'s per-variable slots"
    require_keras_version(feature)
    try:
        find = optimizer._get_variable_index
    except AttributeError as error:
        raise internal_changed(feature, "Optimizer._get_variable_index", error) from None
    return find(variable)


def built_variables(optimizer):
    """The list of model variables `optimizer` was built with (a copy)."""
    feature = f"{type(optimizer).__name__}.apply without `trainable_variables`"
    require_keras_version(feature)
    try:
        return list(optimizer._trainable_variables)
    except (AttributeError, TypeError) as error:
        raise internal_changed(feature, "Optimizer._trainable_variables", error) from None


def backend_update_step(parent, grads, trainable_variables, learning_rate):
    """Runs Keras's per-variable update (`parent._backend_update_step`).

    Args:
        parent: `super(OwnClass, optimizer)`, the Keras implementation.
        grads, trainable_variables: the step's gradients and variables.
        learning_rate: passed unchanged to every `update_step` call (a
            tuple carries more values computed once per step).
    """
    feature = "an optimizer value computed once per step"
    require_keras_version(feature)
    try:
        step = parent._backend_update_step
    except AttributeError as error:
        raise internal_changed(feature, "Optimizer._backend_update_step", error) from None
    return step(grads, trainable_variables, learning_rate)


class _FixedSeed(keras.random.SeedGenerator):
    """A `SeedGenerator` whose `next()` is always the given seed tensor; no state."""

    def __init__(self, seed):  # no `super().__init__()`: no state variable, on purpose
        self.name = "fixed_seed"
        self._fixed = seed

    def next(self, ordered=True):
        return self._fixed


def normal_from_seed(shape, seed, stddev=1.0, dtype=None):
    """`keras.random.normal` drawn from the seed tensor `seed` (2 uint32), statelessly."""
    feature = "kt.optimizers.GradientNoise's noise draw"
    require_keras_version(feature)
    try:
        return keras.random.normal(shape, stddev=stddev, dtype=dtype, seed=_FixedSeed(seed))
    except AttributeError as error:
        raise internal_changed(feature, "keras.random.SeedGenerator.next (draw_seed)", error) from None


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

        try:
            step = optimizer._iterations.value
        except AttributeError as error:
            raise internal_changed("a scheduled optimizer hyperparameter", "Optimizer._iterations", error) from None
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
# Patched train step (kt.callbacks.CurveDiagnostics and the LR finder: each
# step's own loss and batch size, the batch of the first non-finite loss)
# --------------------------------------------------------------------------
# Why: Keras has no public hook *inside* the compiled train step; a callback
# sees the logs after the step (a running mean), not the batch. To record each
# step's own loss and the input batch of the first non-finite loss
# (`kerastoolkit/diagnostics/recorder.py`), the model's `train_step` is wrapped on the instance
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
    feature = "wrapping a model's train step"
    require_keras_version(feature)
    # `fit` rebuilds its step only through `make_train_function` when
    # `train_function` is None: without them the wrapper would be ignored.
    if not hasattr(model, "make_train_function") or not hasattr(model, "train_function"):
        raise internal_changed(feature, "Trainer.make_train_function / Trainer.train_function")
    step = wrapper(model.train_step)
    model.train_step = step
    model.train_function = None  # rebuilt with the wrapped step
    return step


def unwrap_train_step(model):
    """Puts back the model's own `train_step` (undoes `wrap_train_step`)."""
    if "train_step" in vars(model):
        del model.train_step
    model.train_function = None


# ------------------------------------------------------------------ issue 12:
# the training loss tracker (exact per-batch losses).
#
# Why: in `on_train_batch_end` Keras passes `logs["loss"]`, the running mean of
# the epoch weighted by batch size, and with `steps_per_execution > 1` only for
# every n-th step. Each batch's own loss is the increment of the tracker's
# `total` (sum of batch loss x batch size) and `count` (examples) over one
# `train_step`. `Model.metrics` (public) lists the tracker first; its `total`
# and `count` variables are attributes of `keras.metrics.Mean` that Keras does
# not document.


def loss_tracker_variables(model):
    """`(total, count)` of the model's training-loss tracker, or `None`.

    Args:
        model: a compiled Keras model.

    Returns:
        The two `keras.Variable`s of the `keras.metrics.Mean` named `"loss"`
        that `train_step` updates with `(loss, batch size)`, or `None` when
        the model has no such tracker (not compiled, custom `train_step`).

    Raises:
        RuntimeError: on a Keras version this was not verified on.
    """
    feature = "exact per-batch loss recording"
    require_keras_version(feature)
    for metric in getattr(model, "metrics", None) or []:
        if isinstance(metric, keras.metrics.Mean) and metric.name == "loss":
            total = getattr(metric, "total", None)
            count = getattr(metric, "count", None)
            if not isinstance(total, keras.Variable) or not isinstance(count, keras.Variable):
                raise internal_changed(feature, "keras.metrics.Mean.total / Mean.count")
            return total, count
    return None


# ------------------------------------------------------------------ issue 12:
# Keras's global seed generator (preflight leaves the random state untouched).
#
# Why: unseeded Keras random ops (initializers of a cloned model, dropout
# without a seed) advance the global `SeedGenerator` Keras keeps in its global
# state; there is no public API to read or restore it.


_SEED_FEATURE = "random-state restoring"
_SEED_INTERNAL = "keras.src.backend.common.global_state / keras.src.random.seed_generator"


def _seed_modules():
    require_keras_version(_SEED_FEATURE)
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator

        return global_state, seed_generator, seed_generator.GLOBAL_SEED_GENERATOR
    except (ImportError, AttributeError) as error:
        raise internal_changed(_SEED_FEATURE, _SEED_INTERNAL, error) from None


def global_seed_state():
    """The global seed generator's state (a NumPy copy), or `None` if absent."""
    global_state, _, name = _seed_modules()
    try:
        gen = global_state.get_global_attribute(name)
        return None if gen is None else keras.ops.convert_to_numpy(gen.state).copy()
    except AttributeError as error:
        raise internal_changed(_SEED_FEATURE, _SEED_INTERNAL, error) from None


def set_global_seed_state(state):
    """Puts back a state from `global_seed_state` (`None`: no generator)."""
    global_state, seed_generator, name = _seed_modules()
    try:
        if state is None:
            global_state.set_global_attribute(name, None)
            return
        gen = global_state.get_global_attribute(name)
        if gen is None:
            gen = seed_generator.global_seed_generator()
        gen.state.assign(state)
    except AttributeError as error:
        raise internal_changed(_SEED_FEATURE, _SEED_INTERNAL, error) from None


# --- multi-worker (issue 11) ---
#
# keras-team/keras#20585: `model.fit` under `tf.distribute.MultiWorkerMirroredStrategy`
# fails at the start of `fit` with "Attempt to convert a value (PerReplica...)
# with an unsupported type". Reproduced with Keras 3.15.1 / TensorFlow 2.21 with
# two workers on 127.0.0.1. There are two causes, both in
# `keras/src/backend/tensorflow/trainer.py`:
#
# 1. `TensorFlowTrainer._maybe_symbolic_build` takes the first distributed batch
#    and calls `strategy.reduce("MEAN", batch, axis=None)` on the whole
#    *structure* `(x, y)` of `PerReplica` values, eagerly, only to learn the
#    shapes for building the model. `CollectiveAllReduceExtended._reduce_to`
#    unwraps a single `DistributedValues`, but a tuple of them goes to the
#    cross-device ops, which try `convert_to_tensor` on it: the error above.
#    With one worker the same call takes a local short cut, which is why
#    `MirroredStrategy` works. Fix: build from the first local replica's
#    values (`strategy.experimental_local_results(v)[0]`). Building only needs
#    shapes and dtypes; no collective is needed.
# 2. `reduce_per_replica`, which reduces a step's outputs (the metric results)
#    over the replicas, calls `strategy.reduce("MEAN", v, axis=0)` in
#    multi-worker mode. The outputs are scalars, so `axis=0` fails ("Invalid
#    reduction dimension 0 for input with 0 dimensions"). Fix: `axis=None`,
#    the mean over all replicas of all workers, i.e. exactly what Keras does
#    over the local replicas of `MirroredStrategy`. These are the per-batch
#    logs; the epoch logs (the `History`) are read by Keras from the metric
#    variables in cross-replica context, which sums their totals and counts
#    over every replica of every worker: the global metric.
#
# The fix is opt-in: `enable_multi_worker_fit()` installs it (called by
# `kerastoolkit.distribute.enable_multi_worker()` and by
# `kerastoolkit.distribute.strategy()` when it picks a multi-worker strategy);
# `disable_multi_worker_fit()` puts Keras's functions back. Both replacements
# delegate to Keras's own functions unless the strategy is a
# `MultiWorkerMirroredStrategy` in multi-worker mode, so single-worker
# training is unchanged.

import hashlib
import inspect

MULTI_WORKER_KERAS_VERSIONS = tuple(f"{a}.{b}." for a, b in VERIFIED_KERAS)
"""Keras versions (prefixes) the multi-worker fix was verified on (`VERIFIED_KERAS`)."""

# sha256 (first 16 hex digits) of the source of each Keras internal the fix
# replaces or calls, as read from Keras 3.15.1. A different source means Keras
# changed the code this fix was written against: it then refuses to apply.
MULTI_WORKER_FINGERPRINTS = {
    "TensorFlowTrainer._maybe_symbolic_build": "92a504f5eba9b29f",
    "reduce_per_replica": "2e7d54b1e6edc29a",
    "_collective_all_reduce_multi_worker": "0302369d850e6694",
}

_ORIGINALS = {}


_MULTI_WORKER_FEATURE = "kerastoolkit's multi-worker fix for `model.fit` (keras-team/keras#20585)"


def _trainer_module():
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError as error:
        raise internal_changed(_MULTI_WORKER_FEATURE, "keras.src.backend.tensorflow.trainer", error) from None
    return trainer


def _internals(trainer):
    try:
        return {
            "TensorFlowTrainer._maybe_symbolic_build": trainer.TensorFlowTrainer._maybe_symbolic_build,
            "reduce_per_replica": trainer.reduce_per_replica,
            "_collective_all_reduce_multi_worker": trainer._collective_all_reduce_multi_worker,
        }
    except AttributeError as error:
        raise internal_changed(_MULTI_WORKER_FEATURE, "keras.src.backend.tensorflow.trainer", error) from None


def source_fingerprint(function):
    """The first 16 hex digits of the sha256 of `function`'s source."""
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def multi_worker_fingerprints():
    """The fingerprints of the Keras internals the multi-worker fix relies on,
    read from the installed Keras (Keras's own functions, even when patched)."""
    trainer = _trainer_module()
    current = _internals(trainer)
    current.update(_ORIGINALS)
    return {name: source_fingerprint(fn) for name, fn in current.items()}


def check_multi_worker_keras():
    """Raises `RuntimeError` unless the fix can be applied to the installed Keras.

    As every piece here: on an unverified Keras it warns once
    (`require_keras_version`) and refuses only when the replaced functions'
    sources differ from the ones the fix was written against.
    """
    version = keras.__version__
    require_keras_version(_MULTI_WORKER_FEATURE)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "MultiWorkerMirroredStrategy needs the TensorFlow backend. "
            f"Received: keras.backend.backend()={keras.backend.backend()!r}"
        )
    changed = {
        name: got
        for name, got in multi_worker_fingerprints().items()
        if got != MULTI_WORKER_FINGERPRINTS[name]
    }
    if changed:
        raise KerasInternalChanged(
            "The Keras internals that kerastoolkit's multi-worker fix "
            "(keras-team/keras#20585) replaces have changed in this Keras "
            f"{version}: {sorted(changed)}. The fix is not applied (verified on "
            f"Keras {_verified_lines()}). Received: fingerprints={changed}"
        )


def multi_worker_fit_enabled():
    """Whether `enable_multi_worker_fit` is installed."""
    return bool(_ORIGINALS)


def enable_multi_worker_fit():
    """Makes `model.fit` work under `MultiWorkerMirroredStrategy` (keras#20585).

    Idempotent. On a Keras outside `VERIFIED_KERAS` it warns once and applies
    the fix only if the replaced functions are unchanged (fingerprints).

    Raises:
        RuntimeError: on another backend, or when the Keras internals differ
            from the ones the fix was written for.
    """
    if _ORIGINALS:
        return
    check_multi_worker_keras()
    import tensorflow as tf
    from keras.src import tree

    trainer = _trainer_module()
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica
    multi_worker = trainer._collective_all_reduce_multi_worker

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras reduces the first batch across workers, which fails (see above).
        if (
            self._distribute_strategy is None
            or iterator is None
            or not multi_worker(self.distribute_strategy)
        ):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        strategy = self.distribute_strategy

        def first_local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, it in iterator:
            data_batch = tree.map_structure(first_local, next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values
            )
        return original_reduce(values, strategy, reduction)

    _maybe_symbolic_build.__doc__ = original_build.__doc__
    _maybe_symbolic_build.__kerastoolkit_fix__ = "keras-team/keras#20585"
    reduce_per_replica.__doc__ = original_reduce.__doc__
    reduce_per_replica.__kerastoolkit_fix__ = "keras-team/keras#20585"
    _ORIGINALS["TensorFlowTrainer._maybe_symbolic_build"] = original_build
    _ORIGINALS["reduce_per_replica"] = original_reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica


def disable_multi_worker_fit():
    """Puts back Keras's own functions replaced by `enable_multi_worker_fit`."""
    if not _ORIGINALS:
        return
    trainer = _trainer_module()
    trainer.TensorFlowTrainer._maybe_symbolic_build = _ORIGINALS.pop(
        "TensorFlowTrainer._maybe_symbolic_build"
    )
    trainer.reduce_per_replica = _ORIGINALS.pop("reduce_per_replica")


# --- end multi-worker (issue 11) ---
