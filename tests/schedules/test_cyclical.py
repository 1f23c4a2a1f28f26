"""Cyclical learning rates (Smith 2017) against an independent NumPy version of
the paper's policies, tfa's expected values, inside `fit` with the rate
callbacks, and saved/loaded in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import PlateauDecay
from tests.callbacks._util import AppliedLR, InjectMetric, probe_data, probe_model
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, subprocess_env
from tests.schedules._scale_fns import fifth_root_decay

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S = kt.schedules


def smith(t, base, peak, half, scale="triangular", gamma=1.0, mode="cycle", fn=None):
    """Smith's policies, written from the position inside the current cycle.

    A cycle lasts `2·half` steps; at position `p` the triangle is
    `1 − |p − half| / half`: 0 at the start, 1 at `half`, 0 again at `2·half`.
    """
    t = np.asarray(t, dtype=np.float64)
    cycle = np.floor(t / (2.0 * half)) + 1.0
    position = t - (cycle - 1.0) * 2.0 * half
    triangle = 1.0 - np.abs(position - half) / half
    u = cycle if mode == "cycle" else t
    if scale == "triangular":
        factor = np.ones_like(t)
    elif scale == "triangular2":
        factor = 0.5 ** (cycle - 1.0)
    elif scale == "exp_range":
        factor = gamma ** u
    else:
        factor = fn(u)
    return base + (peak - base) * triangle * factor


def np_fifth_root(x):
    return 5.0 ** (-np.asarray(x) / 10.0)


# name -> (schedule, reference of the step, steps to check): at least 7 cycles.
CASES = {
    "triangular": (
        lambda: S.Triangular(0.01, 0.3, step_size=6),
        lambda t: smith(t, 0.01, 0.3, 6), 90),
    "triangular2": (
        lambda: S.Triangular2(0.02, 0.5, step_size=5),
        lambda t: smith(t, 0.02, 0.5, 5, "triangular2"), 80),
    "exp_range_iterations": (
        lambda: S.ExponentialRange(0.01, 0.4, step_size=4, gamma=0.97),
        lambda t: smith(t, 0.01, 0.4, 4, "exp_range", 0.97, "iterations"), 70),
    "exp_range_cycle": (
        lambda: S.ExponentialRange(0.01, 0.4, step_size=4, gamma=0.8, scale_mode="cycle"),
        lambda t: smith(t, 0.01, 0.4, 4, "exp_range", 0.8, "cycle"), 70),
    "custom_cycle": (
        lambda: S.Cyclical(0.05, 0.25, step_size=3, scale_fn=fifth_root_decay),
        lambda t: smith(t, 0.05, 0.25, 3, "custom", fn=np_fifth_root), 60),
    "custom_iterations": (
        lambda: S.Cyclical(0.05, 0.25, step_size=3, scale_fn=fifth_root_decay,
                           scale_mode="iterations"),
        lambda t: smith(t, 0.05, 0.25, 3, "custom", mode="iterations", fn=np_fifth_root), 60),
    "fractional_step_size": (
        lambda: S.Triangular(0.1, 0.2, step_size=2.5),
        lambda t: smith(t, 0.1, 0.2, 2.5), 50),
    "falling_cycles": (  # e.g. a cyclical momentum: maximal below initial
        lambda: S.Triangular2(0.95, 0.85, step_size=4),
        lambda t: smith(t, 0.95, 0.85, 4, "triangular2"), 60),
    "per_epoch": (
        lambda: S.Triangular(0.01, 0.3, step_size=2, steps_per_epoch=3),
        lambda t: smith(np.asarray(t) // 3, 0.01, 0.3, 2), 60),
}


def values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(t))) for t in steps])


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_smith_step_by_step(case):
    make, reference, n = CASES[case]
    steps = np.arange(n)
    expected = reference(steps)
    np.testing.assert_allclose(values(make(), steps), expected, rtol=1e-5, atol=1e-7)
    # The same values after a registered-serialization round trip.
    rebuilt = assert_config_roundtrip(make())
    np.testing.assert_allclose(values(rebuilt, steps), expected, rtol=1e-5, atol=1e-7)


def test_integer_step_tensor_as_keras_passes_it():
    schedule = S.Triangular2(0.02, 0.5, step_size=5)
    for step in (0, 7, 33, 1001):
        got = float(keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(step, "int32"))))
        assert got == pytest.approx(float(smith(step, 0.02, 0.5, 5, "triangular2")), rel=1e-5)


# tfa's own expected values (tensorflow_addons/optimizers/tests/cyclical_learning_rate_test.py).


def test_tfa_triangular_expectation():
    expected = np.concatenate([np.linspace(0.1, 1.0, 41), np.linspace(1.0, 0.1, 41)[1:]])
    np.testing.assert_allclose(values(S.Triangular(0.1, 1, step_size=40), range(81)),
                               expected, rtol=1e-6)


def test_tfa_triangular2_expectation():
    middle = (1.0 + 0.1) / 2
    expected = np.concatenate([
        np.linspace(0.1, 1.0, 31), np.linspace(1.0, 0.1, 31)[1:],
        np.linspace(0.1, middle, 31)[1:], np.linspace(middle, 0.1, 31)[1:],
    ])
    np.testing.assert_allclose(values(S.Triangular2(0.1, 1, step_size=30), range(121)),
                               expected, rtol=1e-6)


def test_tfa_exponential_expectation_far_into_training():
    schedule = S.ExponentialRange(0.1, 1, step_size=2000, gamma=0.996)
    steps = [0, 1, 999, 2000, 2001, 3999, 4000, 5000, 6000, 7999, 8000]
    expected = smith(steps, 0.1, 1.0, 2000, "exp_range", 0.996, "iterations")
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "make, error, fragment",
    [
        (lambda: S.Triangular(-0.1, 1, 4), ValueError, "initial_learning_rate=-0.1"),
        (lambda: S.Triangular(0.1, float("nan"), 4), ValueError, "maximal_learning_rate=nan"),
        (lambda: S.Triangular2(0.1, 1, 0), ValueError, "step_size=0"),
        (lambda: S.Triangular(0.1, 1, "4"), TypeError, "step_size='4'"),
        (lambda: S.ExponentialRange(0.1, 1, 4, gamma=0.0), ValueError, "gamma=0.0"),
        (lambda: S.ExponentialRange(0.1, 1, 4, gamma=1.5), ValueError, "gamma=1.5"),
        (lambda: S.ExponentialRange(0.1, 1, 4, scale_mode="epoch"), ValueError,
         "scale_mode='epoch'"),
        (lambda: S.Cyclical(0.1, 1, 4, scale_fn=fifth_root_decay, scale_mode="step"),
         ValueError, "scale_mode='step'"),
        (lambda: S.Triangular(0.1, 1, 4, steps_per_epoch=0), ValueError, "steps_per_epoch=0"),
        (lambda: S.Cyclical(0.1, 1, 4, scale_fn=0.5), TypeError, "scale_fn=0.5"),
    ],
)
def test_bad_arguments(make, error, fragment):
    with pytest.raises(error, match=r"Received: .*" + fragment.replace(".", r"\.")):
        make()


def _unregistered(x):
    return x


def test_scale_function_must_load_back_or_is_refused():
    with pytest.raises(ValueError, match=r"cannot be a lambda.*register_keras_serializable.*Received: scale_fn="):
        S.Cyclical(0.1, 1, 4, scale_fn=lambda x: 1.0)
    with pytest.raises(ValueError, match=r"does not serialize.*register_keras_serializable.*Received: scale_fn="):
        S.Cyclical(0.1, 1, 4, scale_fn=_unregistered)
    config = S.Cyclical(0.1, 1, 4, scale_fn=fifth_root_decay).get_config()
    assert config["scale_fn"]["config"] == "kerastoolkit_tests>fifth_root_decay"


# --- Inside fit: the rate actually applied, composed with the rate callbacks.

SPE = 4


def test_inside_schedule_warmup_with_plateau_decay():
    """kt.schedules.Warmup(Triangular2) with PlateauDecay halving at plateaus."""
    warmup, eta = 3, (0.01, 0.09, 5)
    schedule = S.Warmup(S.Triangular2(*eta), warmup_steps=warmup)
    scores = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    model = probe_model(keras.optimizers.SGD(schedule))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    plateau = PlateauDecay(monitor="score", factor=0.5, patience=2)
    model.fit(x, y, batch_size=bs, epochs=len(scores), shuffle=False, verbose=0,
              callbacks=[InjectMetric("score", scores), plateau, rec])
    assert plateau.reductions == [2, 5]
    steps = np.arange(len(scores) * SPE)
    base = np.where(steps < warmup, smith(0, *eta, "triangular2") * steps / warmup,
                    smith(np.maximum(steps - warmup, 0), *eta, "triangular2"))
    multiplier = np.where(steps // SPE > 2, 0.5, 1.0)
    np.testing.assert_allclose(rec.applied, base * multiplier, rtol=3e-4, atol=1e-6)


def test_with_warmup_callback():
    schedule = S.ExponentialRange(0.02, 0.1, step_size=3, gamma=0.95)
    model = probe_model(keras.optimizers.SGD(schedule))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=4, shuffle=False, verbose=0,
              callbacks=[kt.callbacks.Warmup(warmup_steps=5, start=0.001), rec])
    steps = np.arange(4 * SPE)
    after = smith(np.maximum(steps - 5, 0), 0.02, 0.1, 3, "exp_range", 0.95, "iterations")
    ramp = 0.001 + (0.02 - 0.001) * steps / 5
    np.testing.assert_allclose(rec.applied, np.where(steps < 5, ramp, after),
                               rtol=3e-4, atol=1e-6)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_applied_under_mixed_float16(mixed_precision):
    model = probe_model(keras.optimizers.SGD(S.Triangular2(0.02, 0.1, step_size=2)))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=3, shuffle=False, verbose=0, callbacks=[rec])
    expected = smith(np.arange(3 * SPE), 0.02, 0.1, 2, "triangular2")
    # The probe's float16 kernel rounds each step's change.
    np.testing.assert_allclose(rec.applied, expected, rtol=2e-2)


@requires_tensorflow
def test_applied_under_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = probe_model(keras.optimizers.SGD(S.Triangular(0.02, 0.1, step_size=3)))
    x, y, bs = probe_data(SPE, batch_size=8)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=3, shuffle=False, verbose=0, callbacks=[rec])
    np.testing.assert_allclose(rec.applied, smith(np.arange(3 * SPE), 0.02, 0.1, 3),
                               rtol=3e-4, atol=1e-6)


# --- .keras in a fresh process: the loaded optimizer continues on the same curve.

_RESUME = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import kerastoolkit  # noqa: F401  (registers the schedules)
    import tests.callbacks._util  # noqa: F401  (the probe's loss)
    import tests.schedules._scale_fns  # noqa: F401  (the custom scale function)

    out = {}
    for path in sys.argv[1:]:
        model = keras.saving.load_model(path)
        kernel = model.layers[0].kernel
        before = float(np.ravel(keras.ops.convert_to_numpy(kernel))[0])
        applied = []
        for _ in range(6):
            model.train_on_batch(np.ones((4, 1), "float32"), np.zeros((4, 1), "float32"))
            now = float(np.ravel(keras.ops.convert_to_numpy(kernel))[0])
            applied.append(before - now)
            before = now
        out[path] = {"iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                     "applied": applied}
    print(json.dumps(out))
    """
)


@pytest.mark.slow
@requires_tensorflow  # the JAX job checks the math; the file format is Keras's
def test_keras_file_in_a_fresh_process_resumes_the_curve(tmp_path):
    names = ["triangular2", "exp_range_iterations", "custom_iterations", "per_epoch"]
    paths = []
    x, y, bs = probe_data(SPE)
    for name in names:
        model = probe_model(keras.optimizers.SGD(CASES[name][0]()))
        model.fit(x, y, batch_size=bs, epochs=2, shuffle=False, verbose=0)
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        paths.append(path)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, env.get("PYTHONPATH")] if p)
    result = subprocess.run([sys.executable, "-c", _RESUME, *paths], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for name, path in zip(names, paths):
        steps = 2 * SPE + np.arange(6)
        np.testing.assert_allclose(out[path]["applied"], CASES[name][1](steps),
                                   rtol=3e-4, atol=1e-6, err_msg=name)
        assert out[path]["iterations"] == 2 * SPE + 6
