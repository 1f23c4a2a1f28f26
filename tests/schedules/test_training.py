"""Schedules inside compiled models: the learning rate actually applied, the
run-time multiplier of `Scaled`, jit, mixed precision, MirroredStrategy,
`.keras` save/load in a fresh process and resumed training."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import subprocess_env
from tests.schedules import reference as ref

S = kt.schedules
BATCH = 4


class _BiasRecorder(keras.callbacks.Callback):
    """Records the probe's bias after every step (JAX: syncs the state first)."""

    def __init__(self, on_step=None):
        super().__init__()
        self.biases = []
        self.on_step = on_step

    def on_train_begin(self, logs=None):
        if not self.biases:
            self.biases.append(self._bias())

    def on_train_batch_end(self, batch, logs=None):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        self.biases.append(self._bias())
        if self.on_step is not None:
            self.on_step(len(self.biases) - 1, self.model)

    def _bias(self):
        return float(ops.convert_to_numpy(self.model.layers[-1].bias)[0])

    def applied_rates(self):
        # loss = mean(y_pred), so d loss / d bias = 1 and plain SGD moves the
        # bias by exactly -learning_rate each step.
        return -np.diff(np.asarray(self.biases, dtype="float64"))


def _probe(schedule, jit_compile=False):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule),
        # Per-sample loss y_pred: Keras averages it (over the global batch
        # under tf.distribute), so d loss / d bias = 1.
        loss=lambda y_true, y_pred: y_pred[:, 0],
        jit_compile=jit_compile,
    )
    return model


def _fit_steps(model, steps, callbacks):
    x = np.random.RandomState(0).normal(size=(steps * BATCH, 3)).astype("float32")
    y = np.zeros((steps * BATCH, 1), "float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=callbacks)


def _retrace_if_needed(model):
    if S.Scaled.needs_retrace():
        model.make_train_function(force=True)


class _CountingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Counts Python calls: in a traced train function, one per trace."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __call__(self, step):
        self.calls += 1
        return self.inner(step)


def test_scaled_multiplier_changes_applied_rate_without_new_optimizer():
    """Changed from a callback mid-fit and between two fits; the optimizer and
    (on TensorFlow) the traced train function stay the same: no retrace."""
    counting = _CountingSchedule(S.Cosine(0.1, total=12))
    scaled = S.Scaled(counting, multiplier=1.0)
    model = _probe(scaled)
    optimizer = model.optimizer

    def from_callback(step, model):
        if step == 3:
            scaled.multiplier = 0.5
            _retrace_if_needed(model)

    recorder = _BiasRecorder(on_step=from_callback)
    _fit_steps(model, 6, [recorder])
    train_function, traces = model.train_function, counting.calls
    assert traces >= 1

    scaled.multiplier = 0.2
    _retrace_if_needed(model)
    _fit_steps(model, 9, [recorder])

    assert model.optimizer is optimizer
    if not S.Scaled.needs_retrace():
        assert model.train_function is train_function
        assert counting.calls == traces  # the schedule was not traced again
    multipliers = [1.0] * 3 + [0.5] * 3 + [0.2] * 9
    expected = [m * ref.cosine(k, 0.1, 12) for k, m in enumerate(multipliers)]
    np.testing.assert_allclose(recorder.applied_rates(), expected, rtol=1e-4, atol=2e-7)
    # The optimizer reports the scaled rate too.
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(optimizer.learning_rate)),
        0.2 * ref.cosine(15, 0.1, 12), rtol=1e-5, atol=1e-8)


WARMUP_SPE = 2


def _warmup_cosine_reference(step, multiplier=1.0):
    inner = lambda k: multiplier * ref.cosine(k, 0.2, 4, spe=WARMUP_SPE)  # noqa: E731
    return ref.warmup(step, inner, warmup_steps=2, start=0.01, spe=WARMUP_SPE)


def _warmup_cosine(multiplier=1.0):
    return S.Warmup(
        S.Scaled(S.Cosine(0.2, total=4, steps_per_epoch=WARMUP_SPE), multiplier),
        warmup_steps=2, start=0.01, steps_per_epoch=WARMUP_SPE,
    )


def test_applied_rate_with_jit_compile():
    model = _probe(_warmup_cosine(0.5), jit_compile=True)
    recorder = _BiasRecorder()
    _fit_steps(model, 16, [recorder])
    expected = [_warmup_cosine_reference(k, 0.5) for k in range(16)]
    np.testing.assert_allclose(recorder.applied_rates(), expected, rtol=1e-4, atol=2e-7)


def test_applied_rate_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        scaled = S.Scaled(S.OneCycle(0.3, total=10, div_factor=5.0))
        model = _probe(scaled)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        recorder = _BiasRecorder()
        _fit_steps(model, 6, [recorder])
        scaled.multiplier = 0.5
        _retrace_if_needed(model)
        _fit_steps(model, 6, [recorder])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    expected = [(1.0 if k < 6 else 0.5) * ref.one_cycle(k, 0.3, 10, div_factor=5.0)
                for k in range(12)]
    np.testing.assert_allclose(recorder.applied_rates(), expected, rtol=1e-4, atol=2e-7)


@requires_tensorflow
@pytest.mark.parametrize("created_in_scope", [True, False])
def test_applied_rate_under_mirrored_strategy(mirrored_strategy, created_in_scope):
    """The multiplier created inside the strategy scope (a mirrored variable)
    or outside it (as a callback creating `Scaled` during `fit` would), and
    assigned from the cross-replica context between fits."""
    assert mirrored_strategy.num_replicas_in_sync == 2
    if created_in_scope:
        with mirrored_strategy.scope():
            schedule = _warmup_cosine()
            model = _probe(schedule)
    else:
        schedule = _warmup_cosine()
        with mirrored_strategy.scope():
            model = _probe(schedule)
    scaled = schedule.schedule
    recorder = _BiasRecorder()
    _fit_steps(model, 6, [recorder])  # batch of 4 = 2 per replica
    scaled.multiplier = 0.25
    _fit_steps(model, 6, [recorder])
    assert scaled.multiplier == 0.25
    expected = [_warmup_cosine_reference(k, 1.0 if k < 6 else 0.25) for k in range(12)]
    np.testing.assert_allclose(recorder.applied_rates(), expected, rtol=1e-4, atol=2e-7)


# --- .keras save/load (fresh process) and resumed training -------------------

# (name, schedule factory, NumPy reference of the step) for the resume checks.
RESUME_CASES = [
    ("exponential", lambda: S.Exponential(0.2, k=0.1),
     lambda k: ref.exponential(k, 0.2, 0.1)),
    ("inverse_time", lambda: S.InverseTime(0.2, k=0.3, steps_per_epoch=3),
     lambda k: ref.inverse_time(k, 0.2, 0.3, spe=3)),
    ("inverse_sqrt", lambda: S.InverseSqrt(0.2),
     lambda k: ref.inverse_sqrt(k, 0.2)),
    ("linear", lambda: S.Linear(0.2, total=9),
     lambda k: ref.linear(k, 0.2, 9)),
    ("step_decay", lambda: S.StepDecay(0.2, factor=0.5, every=2, steps_per_epoch=2),
     lambda k: ref.step_decay(k, 0.2, 0.5, 2, spe=2)),
    ("cyclic_cosine", lambda: S.CyclicCosine(0.2, total=9, cycles=2),
     lambda k: ref.cyclic_cosine(k, 0.2, 9, 2)),
    ("one_cycle", lambda: S.OneCycle(0.3, total=10),
     lambda k: ref.one_cycle(k, 0.3, 10)),
    # Warmup(Scaled(Cosine)) whose multiplier is lowered to 0.5 before saving.
    ("warmup_scaled_cosine", _warmup_cosine, None),
]
N_BEFORE, N_AFTER = 5, 7

_FRESH_LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import kerastoolkit  # registers every public object

    x = np.load(sys.argv[1])
    results = {}
    for path in sys.argv[3:]:
        model = keras.saving.load_model(path)
        results[path] = {
            "prediction": keras.ops.convert_to_numpy(model(x)).tolist(),
            "learning_rate": float(keras.ops.convert_to_numpy(
                model.optimizer.learning_rate)),
            "iterations": int(keras.ops.convert_to_numpy(
                model.optimizer.iterations)),
            "schedule": type(model.optimizer._learning_rate).__name__,
        }
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
    """
)


def _digits(n):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data[:n] / 16.0).astype("float32")
    return x, data.target[:n].astype("int32")


def _classifier(schedule):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit(model, x, y):
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)


@pytest.mark.slow
def test_keras_save_load_fresh_process_and_resume(tmp_path):
    x, y = _digits(8 * (N_BEFORE + N_AFTER))
    x1, y1 = x[: 8 * N_BEFORE], y[: 8 * N_BEFORE]
    x2, y2 = x[8 * N_BEFORE:], y[8 * N_BEFORE:]
    saved = {}
    for name, factory, reference in RESUME_CASES:
        schedule = factory()
        model = _classifier(schedule)
        _fit(model, x1, y1)
        if name == "warmup_scaled_cosine":
            schedule.schedule.multiplier = 0.5
            _retrace_if_needed(model)
            reference = lambda k: _warmup_cosine_reference(k, 0.5)  # noqa: E731
        path = os.path.join(tmp_path, f"{name}.keras")
        model.save(path)
        saved[path] = (
            keras.ops.convert_to_numpy(model(x[:16])),
            reference(N_BEFORE),
        )
        # Training that never stopped ...
        _fit(model, x2, y2)
        # ... and training resumed after a load: the same weights.
        loaded = keras.saving.load_model(path)
        assert type(loaded.optimizer.learning_rate) is not float
        _fit(loaded, x2, y2)
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
        for variable_a, variable_b in zip(model.optimizer.variables,
                                          loaded.optimizer.variables):
            np.testing.assert_allclose(
                ops.convert_to_numpy(variable_b), ops.convert_to_numpy(variable_a),
                rtol=1e-5, atol=1e-6, err_msg=f"{name}: {variable_a.path}")
        np.testing.assert_allclose(
            float(ops.convert_to_numpy(loaded.optimizer.learning_rate)),
            reference(N_BEFORE + N_AFTER), rtol=1e-5, atol=1e-8, err_msg=name)

    # One fresh process loads every saved model (only `import kerastoolkit`).
    x_path = os.path.join(tmp_path, "x.npy")
    out_path = os.path.join(tmp_path, "fresh.json")
    np.save(x_path, x[:16])
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_LOADER, x_path, out_path, *saved],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with open(out_path) as f:
        fresh = json.load(f)
    for path, (prediction, learning_rate) in saved.items():
        got = fresh[path]
        np.testing.assert_allclose(got["prediction"], prediction, atol=1e-6, err_msg=path)
        assert got["iterations"] == N_BEFORE, path
        np.testing.assert_allclose(got["learning_rate"], learning_rate,
                                   rtol=1e-5, atol=1e-8, err_msg=path)
    assert fresh[os.path.join(tmp_path, "warmup_scaled_cosine.keras")][
        "schedule"] == "Warmup"
