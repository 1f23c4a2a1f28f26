"""The optimizers inside `model.fit`: compiled, XLA, mixed precision,
2-replica MirroredStrategy, `.keras` save/load and resumed training.

A linear model with Keras's MSE has gradients we can write in NumPy, so
whole `fit` runs are checked against the NumPy versions of the papers.
"""

import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import fresh_process_predict
from tests.optimizers import reference

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 5))
Y = X @ RNG.normal(size=(5, 3)) + 0.5 * RNG.normal(size=(48, 3))
W0 = {"kernel": 0.3 * RNG.normal(size=(5, 3)), "bias": 0.1 * RNG.normal(size=3)}
BATCH = 8  # 6 steps per epoch
SWATS_TOLERANCE = 8e-3  # bias switches at step 3, kernel at step 10


def _beta(t):
    return reference.polynomial_decay(t, 0.5, 10, 0.95, 1.0)


# name -> (optimizer factory, NumPy reference factory)
CASES = {
    "sgd_momentum_schedule": (
        lambda: kt.optimizers.SGD(
            0.05,
            momentum=keras.optimizers.schedules.PolynomialDecay(0.5, 10, 0.95),
        ),
        lambda: reference.ScheduledSGDRef(0.05, _beta),
    ),
    "swats": (
        lambda: kt.optimizers.SWATS(0.05, beta_2=0.9, switch_criterion="absolute",
                                    switch_tolerance=SWATS_TOLERANCE),
        lambda: reference.SWATSRef(0.05, beta_2=0.9,
                                   switch_tolerance=SWATS_TOLERANCE),
    ),
    "lookahead": (
        lambda: kt.optimizers.Lookahead(
            keras.optimizers.SGD(0.05, momentum=0.5), sync_period=5,
            slow_step_size=0.6),
        lambda: reference.LookaheadRef(reference.SGDRef(0.05, 0.5), W0, 5, 0.6),
    ),
    "lars": (
        lambda: kt.optimizers.LARS(1.0, momentum=0.9, weight_decay=0.001,
                                   trust_coefficient=0.02),
        lambda: reference.LARSRef(1.0, 0.9, 0.001, 0.02,
                                  {"kernel": True, "bias": False}),
    ),
}
NOISE_CASE = (
    lambda: kt.optimizers.GradientNoise(keras.optimizers.SGD(0.05), eta=0.05,
                                        seed=3)
)


def linear_model(optimizer, jit_compile=False):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        3,
        kernel_initializer=keras.initializers.Constant(W0["kernel"]),
        bias_initializer=keras.initializers.Constant(W0["bias"]),
    )])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


def fit(model, epochs):
    model.fit(X.astype("float32"), Y.astype("float32"), batch_size=BATCH,
              epochs=epochs, shuffle=False, verbose=0)
    return model


def weights_of(model):
    kernel, bias = model.get_weights()
    return {"kernel": kernel, "bias": bias}


def assert_weights_close(got, expected, rtol=1e-4, atol=1e-5):
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol,
                                   atol=atol, err_msg=name)


def expected_weights(case, epochs):
    return reference.simulate_fit(CASES[case][1](), W0, X, Y, BATCH, epochs)


def test_swats_reference_switches_with_margin():
    ref = CASES["swats"][1]()
    reference.simulate_fit(ref, W0, X, Y, BATCH, 2)
    for name, state in ref.state.items():
        k = state["switch_step"]
        assert k is not None and k <= 12, (name, k)
        assert all(abs(d / SWATS_TOLERANCE - 1) > 0.05
                   for d in state["diffs"][1:k])


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_matches_numpy(case, jit_compile):
    model = fit(linear_model(CASES[case][0](), jit_compile), epochs=3)
    assert_weights_close(weights_of(model), expected_weights(case, 3))


# --- Gradient noise: a layer that sees only zeros has zero gradient, so its
# weights move by the noise alone: w_T − w_0 = −η·Σ_t n_t.


def zero_input_model(optimizer, jit_compile=False):
    model = keras.Sequential([
        keras.Input((40,)),
        keras.layers.Dense(250, use_bias=False, kernel_initializer="zeros"),
    ])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


def noise_fit(model, steps=6):
    x = np.zeros((16 * steps, 40), "float32")
    y = np.zeros((16 * steps, 250), "float32")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()[0].astype(np.float64)


def assert_noise_statistics(displacement, lr, eta, gamma, steps):
    expected_std = lr * np.sqrt(sum(eta / (1 + t) ** gamma for t in range(steps)))
    n = displacement.size
    assert abs(displacement.std() / expected_std - 1) < 4 / np.sqrt(2 * n)
    assert abs(displacement.mean()) < 4 * expected_std / np.sqrt(n)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradient_noise_in_fit(jit_compile):
    model = zero_input_model(NOISE_CASE(), jit_compile)
    assert_noise_statistics(noise_fit(model), 0.05, 0.05, 0.55, 6)


# --- Mixed precision: Keras wraps the optimizer in a LossScaleOptimizer.


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_float16(case, mixed_precision):
    # Keras wraps the optimizer itself (next test); here the initial loss
    # scale is chosen so that no float16 gradient overflows and no step is
    # skipped, which makes the run comparable with the float32 reference.
    optimizer = keras.optimizers.LossScaleOptimizer(CASES[case][0](),
                                                    initial_scale=2.0**6)
    model = fit(linear_model(optimizer), epochs=2)
    assert model.layers[0].compute_dtype == "float16"
    assert float(keras.ops.convert_to_numpy(optimizer.dynamic_scale)) == 2.0**6
    assert int(keras.ops.convert_to_numpy(optimizer.inner_optimizer.iterations)) == 12
    assert_weights_close(weights_of(model), expected_weights(case, 2),
                         rtol=1e-2, atol=1e-2)


def test_mixed_float16_gradient_noise(mixed_precision):
    model = zero_input_model(NOISE_CASE())
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer,
                      kt.optimizers.GradientNoise)
    assert_noise_statistics(noise_fit(model), 0.05, 0.05, 0.55, 6)


# --- MirroredStrategy with 2 replicas.


@requires_tensorflow
@pytest.mark.parametrize("case", sorted(CASES))
def test_mirrored_strategy(case, mirrored_strategy):
    with mirrored_strategy.scope():
        model = linear_model(CASES[case][0]())
    fit(model, epochs=2)
    assert_weights_close(weights_of(model), expected_weights(case, 2))


@requires_tensorflow
def test_mirrored_strategy_gradient_noise(mirrored_strategy):
    """Each replica adds noise/2: the summed gradient has the single-device
    noise exactly, so the weights match a one-device run step for step."""
    single = noise_fit(zero_input_model(NOISE_CASE()))
    with mirrored_strategy.scope():
        model = zero_input_model(NOISE_CASE())
    np.testing.assert_allclose(noise_fit(model), single, rtol=1e-5, atol=1e-7)
    assert_noise_statistics(single, 0.05, 0.05, 0.55, 6)


@requires_tensorflow
@pytest.mark.parametrize("case", sorted(CASES))
def test_mirrored_strategy_mixed_float16(case, mirrored_strategy,
                                         mixed_precision):
    with mirrored_strategy.scope():
        optimizer = keras.optimizers.LossScaleOptimizer(CASES[case][0](),
                                                        initial_scale=2.0**6)
        model = linear_model(optimizer)
    fit(model, epochs=2)
    assert float(keras.ops.convert_to_numpy(optimizer.dynamic_scale)) == 2.0**6
    assert_weights_close(weights_of(model), expected_weights(case, 2),
                         rtol=1e-2, atol=1e-2)


# --- Save, load in a fresh process, resume.


@pytest.mark.slow
def test_save_load_and_resume(tmp_path):
    cases = dict(CASES)
    cases["gradient_noise"] = (
        lambda: kt.optimizers.GradientNoise(
            kt.optimizers.Lookahead(keras.optimizers.Adam(0.02), 4), eta=0.02,
            seed=7),
        None,
    )
    paths, inputs, expected_outputs = [], [], []
    for name, (make, _) in sorted(cases.items()):
        keras.utils.set_random_seed(0)
        # The uninterrupted run: the NumPy reference where there is one
        # (`test_fit_matches_numpy` checks `fit` against it), else a fit.
        continuous = (weights_of(fit(linear_model(make()), epochs=4)) if name not in CASES
                      else expected_weights(name, 4))

        interrupted = fit(linear_model(make()), epochs=2)
        path = os.path.join(tmp_path, f"{name}.keras")
        interrupted.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded.optimizer) is type(interrupted.optimizer)
        saved_state = [keras.ops.convert_to_numpy(v)
                       for v in interrupted.optimizer.variables]
        loaded_state = [keras.ops.convert_to_numpy(v)
                        for v in loaded.optimizer.variables]
        assert len(saved_state) == len(loaded_state)
        for a, b in zip(saved_state, loaded_state):
            np.testing.assert_array_equal(a, b, err_msg=name)
        fit(loaded, epochs=2)
        if name in CASES:  # the reference's tolerance (float32 against float64)
            assert_weights_close(weights_of(loaded), continuous)
        else:  # the same float32 operations in the same order
            assert_weights_close(weights_of(loaded), continuous, rtol=1e-6, atol=1e-6)
        if name == "swats":  # switched before the save, as Algorithm 1 says
            ref = CASES["swats"][1]()
            reference.simulate_fit(ref, W0, X, Y, BATCH, 2)
            state = loaded.optimizer.switch_state()
            assert [s["switch_step"] for s in state] == [
                ref.state["kernel"]["switch_step"],
                ref.state["bias"]["switch_step"],
            ]
        paths.append(path)
        inputs.append(X[:7].astype("float32"))
        expected_outputs.append(keras.ops.convert_to_numpy(
            interrupted(X[:7].astype("float32"))))
    for got, want in zip(fresh_process_predict(paths, inputs, tmp_path),
                         expected_outputs):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_lookahead_xla_with_large_layer():
    """Slow weights start as a copy of a layer too large for TensorFlow to
    inline as a constant; the copy must still be liftable for XLA."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 64)), rng.normal(size=(32, 40))
    w0 = {"kernel": 0.1 * rng.normal(size=(64, 40)), "bias": np.zeros(40)}
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(
        40, kernel_initializer=keras.initializers.Constant(w0["kernel"]))])
    model.compile(
        optimizer=kt.optimizers.Lookahead(keras.optimizers.Adam(0.01),
                                          sync_period=3, slow_step_size=0.5),
        loss="mse", jit_compile=True)
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=8,
              epochs=2, shuffle=False, verbose=0)
    ref = reference.LookaheadRef(reference.AdamRef(0.01), w0, 3, 0.5)
    expected = reference.simulate_fit(ref, w0, x, y, 8, 2)
    assert_weights_close(weights_of(model), expected)
