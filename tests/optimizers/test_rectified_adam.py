"""RectifiedAdam against a NumPy version of Liu et al.'s Algorithm 2, step by
step (the momentum-SGD steps included), tfa's expected values, inside `fit`
under mixed precision and a 2-replica strategy, and resumed from a `.keras`
file in a fresh process."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip, subprocess_env
from tests.optimizers import reference
from tests.optimizers.test_math import assert_history_close, make_problem, ref_history, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAdam = kt.optimizers.RectifiedAdam


def rho(t, beta_2):
    """ρ_t, the length of the SMA that approximates the EMA of squared gradients."""
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    return rho_inf - 2.0 * t * beta_2 ** t / (1.0 - beta_2 ** t)


class RAdamRef:
    """Algorithm 2 of Liu et al. (2020) in float64, with the options tfa had."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, threshold=5.0,
                 amsgrad=False, total_steps=None, warmup_proportion=0.1, min_lr=0.0,
                 weight_decay=None):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, epsilon
        self.threshold, self.amsgrad, self.wd = threshold, amsgrad, weight_decay
        self.total, self.proportion, self.min_lr = total_steps, warmup_proportion, min_lr
        self.m, self.v, self.vmax, self.t = {}, {}, {}, 0
        self.rectified = []

    def rate(self):
        """The rate of step t (from 1): a schedule of t - 1, then tfa's warmup."""
        base = self.lr(self.t - 1) if callable(self.lr) else self.lr
        if self.total is None:
            return base
        warmup = self.total * self.proportion
        if self.t <= warmup:
            return base * self.t / warmup
        decay = max(self.total - warmup, 1.0)
        return base + (self.min_lr - base) * min(self.t - warmup, decay) / decay

    def step(self, w, g):
        self.t += 1
        t, lr = self.t, self.rate()
        base = self.lr(t - 1) if callable(self.lr) else self.lr
        rho_inf = 2.0 / (1.0 - self.b2) - 1.0
        rho_t = rho(t, self.b2)
        self.rectified.append(rho_t >= self.threshold)
        out = {}
        for n in w:
            x = w[n] - base * self.wd * w[n] if self.wd else w[n]
            m = self.b1 * self.m.get(n, 0.0) + (1 - self.b1) * g[n]
            v = self.b2 * self.v.get(n, 0.0) + (1 - self.b2) * g[n] ** 2
            self.m[n], self.v[n] = m, v
            if self.amsgrad:
                v = np.maximum(self.vmax.get(n, 0.0), v)
                self.vmax[n] = v
            m_hat = m / (1 - self.b1 ** t)
            if rho_t >= self.threshold:
                r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                              / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                v_hat = np.sqrt(v / (1 - self.b2 ** t))
                out[n] = x - lr * r * m_hat / (v_hat + self.eps)
            else:
                out[n] = x - lr * m_hat
        return out


def _exp_decay(step):
    return 0.05 * 0.5 ** (step / 7)


# name -> (optimizer, reference, gradient scale): steps well past the threshold.
CASES = {
    "default": (lambda: RAdam(0.05), lambda: RAdamRef(0.05), 1.0),
    "paper_threshold": (lambda: RAdam(0.05, sma_threshold=4.0),
                        lambda: RAdamRef(0.05, threshold=4.0), 1.0),
    "beta_2_0.99": (lambda: RAdam(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
                    lambda: RAdamRef(0.05, 0.8, 0.99, 1e-5), 1.0),
    "amsgrad": (lambda: RAdam(0.05, beta_2=0.99, amsgrad=True),
                lambda: RAdamRef(0.05, beta_2=0.99, amsgrad=True), 1.0),
    "total_steps": (
        lambda: RAdam(0.05, total_steps=16, warmup_proportion=0.25, min_lr=0.005),
        lambda: RAdamRef(0.05, total_steps=16, warmup_proportion=0.25, min_lr=0.005), 1.0),
    "total_steps_defaults": (lambda: RAdam(0.05, total_steps=12),
                             lambda: RAdamRef(0.05, total_steps=12), 1.0),
    "weight_decay": (lambda: RAdam(0.05, weight_decay=0.3),
                     lambda: RAdamRef(0.05, weight_decay=0.3), 1.0),
    "schedule": (
        lambda: RAdam(keras.optimizers.schedules.ExponentialDecay(0.05, 7, 0.5)),
        lambda: RAdamRef(_exp_decay), 1.0),
}
STEPS = 24


def _shrinking_grads(grads):
    """Large gradients, then small ones: v_t falls and AMSGrad's max matters."""
    return [{k: g * (10.0 if i < 8 else 0.1) for k, g in step.items()}
            for i, step in enumerate(grads)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_algorithm_2_step_by_step(case):
    make, make_ref, scale = CASES[case]
    weights, grads = make_problem(3, STEPS, grad_scale=scale)
    if case == "amsgrad":
        grads = _shrinking_grads(grads)
    got, _ = run(make(), weights, grads)
    ref = make_ref()
    expected = ref_history(ref, weights, grads)
    assert not all(ref.rectified) and any(ref.rectified)  # both regimes ran
    assert_history_close(got, expected, rtol=2e-5, atol=2e-6)


def test_amsgrad_case_uses_the_maximum():
    """The AMSGrad case is not degenerate: without the max the weights differ."""
    weights, grads = make_problem(3, STEPS)
    grads = _shrinking_grads(grads)
    with_max = ref_history(RAdamRef(0.05, beta_2=0.99, amsgrad=True), weights, grads)[-1]
    without = ref_history(RAdamRef(0.05, beta_2=0.99), weights, grads)[-1]
    assert np.abs(with_max["kernel"] - without["kernel"]).max() > 1e-3


@pytest.mark.parametrize("threshold, first", [(5.0, 6), (4.0, 5)])
def test_early_steps_are_momentum_sgd(threshold, first):
    """Before ρ_t reaches the threshold the update is w ← w − η·m̂_t exactly."""
    assert rho(1, 0.999) == pytest.approx(1.0)
    assert [rho(t, 0.999) >= threshold for t in range(1, 8)] == [t >= first for t in range(1, 8)]
    lr, b1 = 0.05, 0.9
    weights, grads = make_problem(5, 7)
    got, _ = run(RAdam(lr, sma_threshold=threshold), weights, grads)
    w = {k: np.array(v) for k, v in weights.items()}
    m = {k: 0.0 for k in w}
    for t in range(1, first):
        for k in w:
            m[k] = b1 * m[k] + (1 - b1) * grads[t - 1][k]
            w[k] = w[k] - lr * m[k] / (1 - b1 ** t)
        for k in w:
            np.testing.assert_allclose(got[t - 1][k], w[k], rtol=1e-5, atol=1e-6)
    # The first rectified step moves far less than momentum SGD would (r_t ≈ 0.01-0.03).
    m_next = {k: b1 * m[k] + (1 - b1) * grads[first - 1][k] for k in w}
    sgd_step = np.abs(lr * m_next["kernel"] / (1 - b1 ** first))
    taken = np.abs(got[first - 1]["kernel"] - got[first - 2]["kernel"])
    assert (taken < 0.2 * sgd_step).all()


# tfa's expected values (tensorflow_addons/optimizers/tests/rectified_adam_test.py):
# two variables, constant gradients, 100 steps.
TFA = {
    "plain": (lambda: RAdam(1e-3), [[0.985769, 1.985269], [2.986119, 3.986068]]),
    "weight_decay": (lambda: RAdam(1e-3, weight_decay=0.01),
                     [[0.984775, 1.983276], [2.983125, 3.982076]]),
    "warmup": (lambda: RAdam(1e-3, total_steps=100, warmup_proportion=0.1, min_lr=1e-5),
               [[0.994062, 1.993912], [2.994167, 3.994152]]),
    "ranger": (lambda: kt.optimizers.Lookahead(RAdam(1e-3, beta_1=0.95), sync_period=6,
                                               slow_step_size=0.45),
               [[0.993126, 1.992901], [2.993283, 3.993261]]),
}


def _constant_gradient_steps(optimizer, steps):
    """tfa's sample: two variables, the same gradients `steps` times (compiled)."""
    variables = [keras.Variable(np.array(v, "float32")) for v in ([1.0, 2.0], [3.0, 4.0])]
    grads = [np.array([0.1, 0.2], "float32"), np.array([0.03, 0.04], "float32")]
    if keras.backend.backend() != "tensorflow":
        history, _ = run(optimizer, {"a": [1.0, 2.0], "b": [3.0, 4.0]},
                         [{"a": grads[0], "b": grads[1]}] * steps)
        return history[-1]["a"], history[-1]["b"]
    import tensorflow as tf

    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply(grads, variables))
    for _ in range(steps):
        step()
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize("case", sorted(TFA))
def test_tfa_expected_values(case):
    make, expected = TFA[case]
    a, b = _constant_gradient_steps(make(), 100)
    np.testing.assert_allclose(a, expected[0], atol=2e-4)
    np.testing.assert_allclose(b, expected[1], atol=2e-4)


def test_config_roundtrip_and_registry():
    for optimizer in (
        RAdam(3e-4, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True, sma_threshold=4.5,
              total_steps=1000, warmup_proportion=0.05, min_lr=1e-6, weight_decay=1e-4),
    ):
        rebuilt = assert_config_roundtrip(optimizer)
        assert rebuilt.get_config() == optimizer.get_config()
    scheduled = RAdam(keras.optimizers.schedules.ExponentialDecay(1e-3, 50, 0.5), total_steps=9)
    rebuilt = keras.optimizers.deserialize(json.loads(json.dumps(
        keras.optimizers.serialize(scheduled))))
    assert type(rebuilt) is RAdam and rebuilt.total_steps == 9
    assert float(rebuilt.learning_rate) == pytest.approx(1e-3)
    radam = kt.optimizers.get("radam")
    assert type(radam) is RAdam and radam.sma_threshold == 5.0
    ranger = kt.optimizers.get("ranger")
    assert type(ranger.inner_optimizer) is RAdam and ranger.sync_period == 6


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"learning_rate": -1.0}, ValueError, "learning_rate=-1.0"),
        ({"beta_2": 1.0}, ValueError, "beta_2=1.0"),
        ({"epsilon": -1e-7}, ValueError, "epsilon=-1e-07"),
        ({"sma_threshold": 3.0}, ValueError, "sma_threshold=3.0"),
        ({"total_steps": 0}, ValueError, "total_steps=0"),
        ({"total_steps": 10.5}, TypeError, "total_steps=10.5"),
        ({"total_steps": 10, "warmup_proportion": 1.5}, ValueError, "warmup_proportion=1.5"),
        ({"total_steps": 10, "min_lr": -0.1}, ValueError, "min_lr=-0.1"),
        ({"min_lr": 1e-5}, ValueError, "min_lr=1e-05, total_steps=None"),
        ({"warmup_proportion": 0.1}, ValueError, "warmup_proportion=0.1, total_steps=None"),
        ({"amsgrad": 1}, TypeError, "amsgrad=1"),
    ],
)
def test_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=r"Received: " + fragment.replace(".", r"\.")):
        RAdam(**kwargs)


# --- Inside fit: a linear model whose MSE gradients the reference computes.

RNG = np.random.default_rng(1)
X = RNG.normal(size=(48, 5))
Y = X @ RNG.normal(size=(5, 3)) + 0.5 * RNG.normal(size=(48, 3))
W0 = {"kernel": 0.3 * RNG.normal(size=(5, 3)), "bias": 0.1 * RNG.normal(size=3)}
BATCH = 8  # 6 steps per epoch: the threshold is crossed in the first epoch
FIT_CASES = {
    "warmup_amsgrad": (
        lambda: RAdam(0.05, amsgrad=True, total_steps=10, min_lr=0.01, weight_decay=0.05),
        lambda: RAdamRef(0.05, amsgrad=True, total_steps=10, min_lr=0.01, weight_decay=0.05)),
    "default": (lambda: RAdam(0.05), lambda: RAdamRef(0.05)),
}


def linear_model(optimizer):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        3, kernel_initializer=keras.initializers.Constant(W0["kernel"]),
        bias_initializer=keras.initializers.Constant(W0["bias"]))])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def fit(model, epochs):
    model.fit(X.astype("float32"), Y.astype("float32"), batch_size=BATCH, epochs=epochs,
              shuffle=False, verbose=0)
    return model


def weights_of(model):
    kernel, bias = model.get_weights()
    return {"kernel": kernel, "bias": bias}


def expected_weights(case, epochs):
    return reference.simulate_fit(FIT_CASES[case][1](), W0, X, Y, BATCH, epochs)


def assert_weights_close(got, expected, rtol=1e-4, atol=1e-5):
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_fit_under_mixed_float16(mixed_precision):
    optimizer = keras.optimizers.LossScaleOptimizer(FIT_CASES["warmup_amsgrad"][0](),
                                                    initial_scale=2.0**6)
    model = fit(linear_model(optimizer), epochs=2)
    assert model.layers[0].compute_dtype == "float16"
    assert int(keras.ops.convert_to_numpy(optimizer.inner_optimizer.iterations)) == 12
    assert_weights_close(weights_of(model), expected_weights("warmup_amsgrad", 2),
                         rtol=1e-2, atol=1e-2)


@requires_tensorflow
def test_fit_under_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = linear_model(FIT_CASES["warmup_amsgrad"][0]())
    fit(model, epochs=2)
    assert_weights_close(weights_of(model), expected_weights("warmup_amsgrad", 2))


_RESUME = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import kerastoolkit  # noqa: F401  (registers RectifiedAdam)

    x, y = np.load(sys.argv[1]), np.load(sys.argv[2])
    for path in sys.argv[3:]:
        model = keras.saving.load_model(path)
        np.save(path + ".state.npy", np.array(
            [np.ravel(keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables],
            dtype=object), allow_pickle=True)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        np.save(path + ".kernel.npy", keras.ops.convert_to_numpy(model.layers[0].kernel))
        np.save(path + ".bias.npy", keras.ops.convert_to_numpy(model.layers[0].bias))
    """
)


@pytest.mark.slow
def test_keras_file_resumes_in_a_fresh_process(tmp_path):
    """Saved after one epoch, loaded in a new process, one more epoch: the
    weights are the uninterrupted run's (the reference's two epochs)."""
    paths, states = [], []
    for case in sorted(FIT_CASES):
        model = fit(linear_model(FIT_CASES[case][0]()), epochs=1)
        path = str(tmp_path / f"{case}.keras")
        model.save(path)
        paths.append(path)
        states.append([np.ravel(keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables])
    np.save(tmp_path / "x.npy", X.astype("float32"))
    np.save(tmp_path / "y.npy", Y.astype("float32"))
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, env.get("PYTHONPATH")] if p)
    result = subprocess.run(
        [sys.executable, "-c", _RESUME, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), *paths],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    for case, path, saved in zip(sorted(FIT_CASES), paths, states):
        loaded = np.load(path + ".state.npy", allow_pickle=True)
        assert len(loaded) == len(saved)
        for a, b in zip(saved, loaded):
            np.testing.assert_array_equal(a, b, err_msg=case)
        got = {"kernel": np.load(path + ".kernel.npy"), "bias": np.load(path + ".bias.npy")}
        assert_weights_close(got, expected_weights(case, 2))


def test_optimizer_slots_are_adams():
    """Adam's slot names, so that tools reading Adam's state read RAdam's."""
    optimizer = RAdam(amsgrad=True)
    variable = keras.Variable(np.zeros((2, 3), "float32"), name="kernel")
    optimizer.build([variable])
    names = sorted(v.name for v in optimizer.variables)
    assert names == sorted(["iteration", "learning_rate", "kernel_momentum",
                            "kernel_velocity", "kernel_velocity_hat"])
    assert json.dumps(optimizer.get_config())
