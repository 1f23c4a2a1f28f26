"""Step-by-step checks of every optimizer against NumPy versions of the papers."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.optimizers import reference

SHAPES = {"kernel": (3, 4), "bias": (4,)}


def make_problem(seed, steps, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [
        {k: grad_scale * rng.normal(size=s) for k, s in SHAPES.items()}
        for _ in range(steps)
    ]
    return weights, grads


def keras_variables(weights):
    return {
        k: keras.Variable(np.asarray(v, "float32"), name=k)
        for k, v in weights.items()
    }


def stepper(optimizer, variables):
    """A function that applies one step of gradients to `variables`.

    On JAX the step is `jax.jit(optimizer.stateless_apply)`, the path JAX
    training takes (and one compilation instead of one trace per step).
    """
    if keras.backend.backend() != "jax":
        return lambda grads: optimizer.apply(grads, variables)
    import jax

    optimizer.build(variables)
    jitted = jax.jit(optimizer.stateless_apply)

    def step(grads):
        new_trainable, new_state = jitted(
            [v.value for v in optimizer.variables], grads,
            [v.value for v in variables],
        )
        for v, value in zip(variables, new_trainable):
            v.assign(value)
        for v, value in zip(optimizer.variables, new_state):
            v.assign(value)

    return step


def run(optimizer, weights, grads):
    """Applies `grads` step by step; returns the weights after each step."""
    variables = keras_variables(weights)
    names = list(variables)
    step = stepper(optimizer, [variables[n] for n in names])
    history = []
    for g in grads:
        step([np.asarray(g[n], "float32") for n in names])
        history.append(
            {n: keras.ops.convert_to_numpy(variables[n]) for n in names}
        )
    return history, variables


def assert_history_close(got, expected, rtol=1e-5, atol=1e-6):
    assert len(got) == len(expected)
    for step, (g, e) in enumerate(zip(got, expected)):
        for name in e:
            np.testing.assert_allclose(
                g[name], e[name], rtol=rtol, atol=atol,
                err_msg=f"step {step + 1}, variable {name}",
            )


def ref_history(ref, weights, grads):
    w = {k: np.array(v, np.float64) for k, v in weights.items()}
    out = []
    for g in grads:
        w = ref.step(w, g)
        out.append({k: v.copy() for k, v in w.items()})
    return out


# --- SGD with a momentum schedule -------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_constant_momentum_matches_keras_sgd(nesterov):
    weights, grads = make_problem(0, 8)
    ours, _ = run(kt.optimizers.SGD(0.05, momentum=0.8, nesterov=nesterov),
                  weights, grads)
    theirs, _ = run(keras.optimizers.SGD(0.05, momentum=0.8, nesterov=nesterov),
                    weights, grads)
    for a, b in zip(ours, theirs):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-7)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_schedule_matches_numpy(nesterov):
    # β rises 0.5 -> 0.95 over 4 steps; 8 steps go past the schedule's end.
    schedule = keras.optimizers.schedules.PolynomialDecay(
        0.5, decay_steps=4, end_learning_rate=0.95, power=1.5
    )
    weights, grads = make_problem(1, 8)
    got, _ = run(kt.optimizers.SGD(0.05, momentum=schedule, nesterov=nesterov),
                 weights, grads)
    expected = reference.sgd_momentum(
        weights, grads, 8, lr=0.05,
        beta=lambda t: reference.polynomial_decay(t, 0.5, 4, 0.95, 1.5),
        nesterov=nesterov,
    )
    assert_history_close(got, expected)
    # The schedule made a difference: constant β = 0.5 gives other weights.
    constant = reference.sgd_momentum(weights, grads, 8, 0.05, lambda t: 0.5)
    assert not np.allclose(constant[-1]["kernel"], got[-1]["kernel"], atol=1e-3)


def test_sgd_momentum_schedule_with_lr_schedule():
    lr = keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5)
    beta = keras.optimizers.schedules.PolynomialDecay(0.5, 5, 0.9)
    weights, grads = make_problem(2, 7)
    got, _ = run(kt.optimizers.SGD(lr, momentum=beta), weights, grads)
    w = {k: np.array(v) for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    expected = []
    for t, g in enumerate(grads):
        eta = 0.1 * 0.5 ** (t / 3)
        b = reference.polynomial_decay(t, 0.5, 5, 0.9, 1.0)
        for k in w:
            m[k] = b * m[k] - eta * g[k]
            w[k] = w[k] + m[k]
        expected.append({k: v.copy() for k, v in w.items()})
    assert_history_close(got, expected)


# --- SWATS ----------------------------------------------------------------


def swats_problem():
    """Gradients for which both variables switch early (steps 2 and 3)."""
    rng = np.random.default_rng(2)
    base = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [
        {k: base[k] * (1 + 0.1 * t) + 0.3 * rng.normal(size=s)
         for k, s in SHAPES.items()}
        for t in range(12)
    ]
    weights = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    return weights, grads


def test_swats_without_switch_is_keras_adam():
    weights, grads = make_problem(3, 8)
    got, _ = run(kt.optimizers.SWATS(0.01, epsilon=1e-7, switch_tolerance=0.0),
                 weights, grads)
    adam, _ = run(keras.optimizers.Adam(0.01, epsilon=1e-7), weights, grads)
    assert_history_close(got, adam, rtol=1e-6, atol=1e-7)
    expected = ref_history(reference.AdamRef(0.01, epsilon=1e-7), weights, grads)
    assert_history_close(got, expected)


def test_swats_switches_like_algorithm_1():
    weights, grads = swats_problem()
    tolerance = 1e-3
    ref = reference.SWATSRef(0.01, beta_2=0.9, switch_tolerance=tolerance)
    expected = ref_history(ref, weights, grads)
    # The reference switches with a clear margin (no float32/float64 tie).
    for name, state in ref.state.items():
        k = state["switch_step"]
        assert k is not None and k < 6, (name, k)
        diffs = state["diffs"]
        assert diffs[k - 1] < tolerance / 2
        assert all(d > 2 * tolerance for d in diffs[1:k - 1])

    optimizer = kt.optimizers.SWATS(0.01, beta_2=0.9, switch_tolerance=tolerance,
                                     switch_criterion="absolute")
    got, variables = run(optimizer, weights, grads)
    assert_history_close(got, expected, rtol=2e-5, atol=1e-6)

    state = {s["variable"]: s for s in optimizer.switch_state()}
    for name, ref_state in ref.state.items():
        mine = state[variables[name].path]
        assert mine["switch_step"] == ref_state["switch_step"]
        np.testing.assert_allclose(mine["sgd_learning_rate"],
                                   ref_state["Lambda"], rtol=1e-5)
    # Different switch steps per variable: the estimate is per variable.
    assert len({s["switch_step"] for s in state.values()}) == 2


def test_swats_default_relative_test_switches_like_the_reference():
    """Issue 13 item 4: the default test is relative, `|λ̂ − γ| < ε·|γ|`."""
    weights, grads = swats_problem()
    tolerance = 5e-2
    ref = reference.SWATSRef(0.01, beta_2=0.9, switch_tolerance=tolerance, relative=True)
    expected = ref_history(ref, weights, grads)
    steps = {}
    for name, state in ref.state.items():
        k = state["switch_step"]
        steps[name] = k
        assert k is not None and state["diffs"][k - 1] < tolerance / 2
        assert all(d > 2 * tolerance for d in state["diffs"][1:k - 1])
    assert steps == {"kernel": 2, "bias": 3}
    optimizer = kt.optimizers.SWATS(0.01, beta_2=0.9, switch_tolerance=tolerance)
    assert optimizer.get_config()["switch_criterion"] == "relative"
    got, variables = run(optimizer, weights, grads)
    assert_history_close(got, expected, rtol=2e-5, atol=1e-6)
    state = {s["variable"]: s for s in optimizer.switch_state()}
    for name, ref_state in ref.state.items():
        assert state[variables[name].path]["switch_step"] == ref_state["switch_step"]


@pytest.mark.slow
def test_swats_switches_at_its_defaults_on_digits():
    """Issue 13 item 4: SWATS at its defaults is not just Adam."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = (data.data[:1200] / 16).astype("float32"), data.target[:1200]

    def switched(**kwargs):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10)])
        optimizer = kt.optimizers.SWATS(**kwargs)
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=64, epochs=12, verbose=0)
        return [s["switch_step"] for s in optimizer.switch_state()]

    # On main (the paper's absolute 1e-9 as default) none of the 4 switched.
    assert sum(k is not None for k in switched()) >= 2


def test_swats_state_is_optimizer_variables():
    weights, grads = swats_problem()
    optimizer = kt.optimizers.SWATS(0.01, beta_2=0.9, switch_tolerance=1e-3,
                                     switch_criterion="absolute")
    run(optimizer, weights, grads)
    paths = [v.path for v in optimizer.variables]
    assert sum("switch_step" in p for p in paths) == 2
    assert sum("sgd_learning_rate" in p for p in paths) == 2


# --- Lookahead --------------------------------------------------------------


@pytest.mark.parametrize("inner", ["sgd", "adam"])
def test_lookahead_matches_numpy(inner):
    weights, grads = make_problem(4, 11)
    if inner == "sgd":
        fast = keras.optimizers.SGD(0.1, momentum=0.7)
        ref_inner = reference.SGDRef(0.1, momentum=0.7)
    else:
        fast = keras.optimizers.Adam(0.05)
        ref_inner = reference.AdamRef(0.05)
    optimizer = kt.optimizers.Lookahead(fast, sync_period=3, slow_step_size=0.6)
    got, _ = run(optimizer, weights, grads)
    expected = ref_history(
        reference.LookaheadRef(ref_inner, weights, k=3, alpha=0.6),
        weights, grads,
    )
    assert_history_close(got, expected)
    # Without Lookahead the weights differ.
    plain = ref_history(
        reference.SGDRef(0.1, 0.7) if inner == "sgd" else reference.AdamRef(0.05),
        weights, grads,
    )
    assert not np.allclose(plain[-1]["kernel"], got[-1]["kernel"], atol=1e-3)


def test_lookahead_wraps_toolkit_optimizer():
    weights, grads = make_problem(5, 7)
    optimizer = kt.optimizers.Lookahead(
        kt.optimizers.SWATS(0.05, epsilon=1e-7, switch_tolerance=0.0),
        sync_period=2, slow_step_size=0.5,
    )
    got, _ = run(optimizer, weights, grads)
    expected = ref_history(
        reference.LookaheadRef(reference.AdamRef(0.05), weights, 2, 0.5),
        weights, grads,
    )
    assert_history_close(got, expected)


# --- LARS -------------------------------------------------------------------


@pytest.mark.parametrize("exclude", [None, [], ["kernel"]])
def test_lars_matches_numpy(exclude):
    weights, grads = make_problem(6, 8, grad_scale=0.5)
    optimizer = kt.optimizers.LARS(
        learning_rate=2.0, momentum=0.8, weight_decay=0.01,
        trust_coefficient=0.02, epsilon=1e-6, exclude_from_adaptation=exclude,
    )
    got, _ = run(optimizer, weights, grads)
    if exclude is None:
        adapted = {"kernel": True, "bias": False}  # 1-D bias excluded
    elif exclude == []:
        adapted = {"kernel": True, "bias": True}
    else:
        adapted = {"kernel": False, "bias": True}
    expected = ref_history(
        reference.LARSRef(2.0, 0.8, 0.01, 0.02, adapted, epsilon=1e-6),
        weights, grads,
    )
    assert_history_close(got, expected)


def test_lars_zero_initialized_layer_uses_trust_ratio_one():
    weights, grads = make_problem(7, 5, grad_scale=0.5)
    weights["kernel"] = np.zeros(SHAPES["kernel"])
    optimizer = kt.optimizers.LARS(learning_rate=0.5, momentum=0.5,
                                   weight_decay=0.001, trust_coefficient=0.01)
    got, _ = run(optimizer, weights, grads)
    expected = ref_history(
        reference.LARSRef(0.5, 0.5, 0.001, 0.01,
                          {"kernel": True, "bias": False}),
        weights, grads,
    )
    assert_history_close(got, expected)


# --- Gradient noise ---------------------------------------------------------


@pytest.mark.parametrize("noise_dtype", ["float32", "bfloat16"])
def test_gradient_noise_variance_follows_annealing(noise_dtype):
    """With SGD(lr=1) the noise is w_t − w_(t+1) − g: check its variance."""
    eta, gamma = 0.3, 0.55
    rng = np.random.default_rng(8)
    shapes = {"kernel": (100, 80), "bias": (80,)}
    weights = {k: rng.normal(size=s) for k, s in shapes.items()}
    variables = keras_variables(weights)
    optimizer = kt.optimizers.GradientNoise(
        keras.optimizers.SGD(1.0), eta=eta, gamma=gamma, seed=11, noise_dtype=noise_dtype
    )
    names = list(shapes)
    step = stepper(optimizer, [variables[k] for k in names])
    noises = []
    for t in range(6):
        g = {k: 0.1 * rng.normal(size=s) for k, s in shapes.items()}
        before = {k: keras.ops.convert_to_numpy(variables[k]).astype(np.float64)
                  for k in names}
        step([np.float32(g[k]) for k in names])
        after = {k: keras.ops.convert_to_numpy(variables[k]).astype(np.float64)
                 for k in names}
        noise = (before["kernel"] - after["kernel"] - g["kernel"]).ravel()
        expected_std = np.sqrt(eta / (1 + t) ** gamma)
        n = noise.size
        assert abs(noise.std() / expected_std - 1) < 4 / np.sqrt(2 * n) + 1e-3
        assert abs(noise.mean()) < 4 * expected_std / np.sqrt(n)
        bias_noise = (before["bias"] - after["bias"] - g["bias"]).ravel()
        assert abs(bias_noise.std() / expected_std - 1) < 0.35
        noises.append(noise / expected_std)
    # Fresh noise every step: consecutive steps are uncorrelated.
    for a, b in zip(noises, noises[1:]):
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(noises[0].size)


def test_gradient_noise_is_reproducible_from_seed():
    weights, grads = make_problem(9, 4)
    first, _ = run(kt.optimizers.GradientNoise(keras.optimizers.Adam(0.01),
                                               eta=0.1, seed=5), weights, grads)
    second, _ = run(kt.optimizers.GradientNoise(keras.optimizers.Adam(0.01),
                                                eta=0.1, seed=5), weights, grads)
    other, _ = run(kt.optimizers.GradientNoise(keras.optimizers.Adam(0.01),
                                               eta=0.1, seed=6), weights, grads)
    assert_history_close(first, second, rtol=0, atol=0)
    assert not np.allclose(first[-1]["kernel"], other[-1]["kernel"])


# --- Weight decay: L2 vs decoupled (the lecture's point) ---------------------


def quadratic_problem(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(4, 4))
    hessian = a @ a.T / 4 + 0.5 * np.eye(4)
    target = rng.normal(size=4)
    w0 = rng.normal(size=4)
    return hessian, target, w0


def descend(optimizer, w0, grad_fn, steps):
    w = keras.Variable(np.float32(w0))
    step = stepper(optimizer, [w])
    for _ in range(steps):
        g = grad_fn(keras.ops.convert_to_numpy(w).astype(np.float64))
        step([np.float32(g)])
    return keras.ops.convert_to_numpy(w).astype(np.float64)


@pytest.mark.parametrize("sgd_class", [keras.optimizers.SGD, kt.optimizers.SGD])
def test_sgd_l2_equals_decoupled_weight_decay(sgd_class):
    hessian, target, w0 = quadratic_problem(10)
    lr, lam = 0.1, 0.05
    grad = lambda w: hessian @ w - target  # noqa: E731
    l2 = descend(sgd_class(lr, momentum=0.0), w0,
                 lambda w: grad(w) + lam * w, 6)  # loss + λ/2·||w||²
    decoupled = descend(sgd_class(lr, momentum=0.0, weight_decay=lam), w0,
                        grad, 6)  # Keras: w ← w − η·λ·w, then the step
    np.testing.assert_allclose(decoupled, l2, rtol=1e-5, atol=1e-6)


def test_adam_l2_differs_from_decoupled_weight_decay():
    hessian, target, w0 = quadratic_problem(11)
    lr, lam = 0.05, 0.5
    grad = lambda w: hessian @ w - target  # noqa: E731
    l2 = descend(keras.optimizers.Adam(lr), w0, lambda w: grad(w) + lam * w, 6)
    decoupled = descend(keras.optimizers.Adam(lr, weight_decay=lam), w0, grad, 6)
    assert np.max(np.abs(l2 - decoupled)) > 1e-2
    # Decoupled: w ← w − η·λ·w, then the Adam step on the loss gradient alone.
    ref = reference.AdamRef(lr, weight_decay=lam)
    w = {"w": w0.copy()}
    for _ in range(6):
        w = ref.step(w, {"w": grad(w["w"])})
    np.testing.assert_allclose(decoupled, w["w"], rtol=1e-5, atol=1e-5)


def test_toolkit_optimizers_decay_decoupled():
    hessian, target, w0 = quadratic_problem(12)
    lr, lam = 0.05, 0.5
    grad = lambda w: hessian @ w - target  # noqa: E731
    swats = kt.optimizers.SWATS(lr, epsilon=1e-7, switch_tolerance=0.0,
                                weight_decay=lam)
    got = descend(swats, w0, grad, 6)
    ref = reference.AdamRef(lr, weight_decay=lam)
    w = {"w": w0.copy()}
    for _ in range(6):
        w = ref.step(w, {"w": grad(w["w"])})
    np.testing.assert_allclose(got, w["w"], rtol=1e-5, atol=1e-5)
    # ... and not as L2 in the loss.
    l2 = descend(kt.optimizers.SWATS(lr, epsilon=1e-7, switch_tolerance=0.0),
                 w0, lambda w: grad(w) + lam * w, 6)
    assert np.max(np.abs(l2 - got)) > 1e-2
    # Wrappers leave decay to the wrapped optimizer, decoupled too.
    wrapped = descend(
        kt.optimizers.Lookahead(keras.optimizers.Adam(lr, weight_decay=lam),
                                sync_period=100),
        w0, grad, 6,
    )
    np.testing.assert_allclose(wrapped, w["w"], rtol=1e-5, atol=1e-5)


def test_gradient_noise_drawn_seed_is_in_the_config():
    """Issue 13 item 7: without a seed, a reload continues with the same noise."""
    weights, grads = make_problem(9, 4)
    optimizer = kt.optimizers.GradientNoise(keras.optimizers.SGD(0.1), eta=0.1)
    config = optimizer.get_config()
    assert isinstance(config["seed"], int)
    twin = kt.optimizers.GradientNoise.from_config(config)
    first, _ = run(optimizer, weights, grads)
    second, _ = run(twin, weights, grads)
    assert_history_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("make", [
    lambda: kt.optimizers.SGD(0.1, momentum=0.9),
    lambda: kt.optimizers.SWATS(1e-3),
    lambda: kt.optimizers.LARS(1.0),
    lambda: kt.optimizers.Lookahead(keras.optimizers.SGD(0.1), sync_period=1),
    lambda: kt.optimizers.GradientNoise(keras.optimizers.SGD(0.1), eta=1.0, seed=3),
    lambda: kt.optimizers.RectifiedAdam(1e-3),
], ids=["SGD", "SWATS", "LARS", "Lookahead", "GradientNoise", "RectifiedAdam"])
def test_a_variable_keras_overwrites_with_its_gradient_is_left_to_keras(make):
    """`keras.Variable.overwrite_with_gradient` (float8 scales): the variable becomes its
    gradient, with no update, noise or slow copy from the optimizer (Keras's documented rule)."""
    rng = np.random.default_rng(0)
    kernel = keras.Variable(rng.normal(size=(3, 2)).astype("float32"), name="kernel")
    scale = keras.Variable(np.ones(2, "float32"), name="scale")
    scale.overwrite_with_gradient = True
    optimizer = make()
    for step in range(2):
        g_kernel = rng.normal(size=(3, 2)).astype("float32")
        g_scale = rng.normal(size=2).astype("float32")
        before = keras.ops.convert_to_numpy(kernel).copy()
        optimizer.apply([keras.ops.convert_to_tensor(g_kernel), keras.ops.convert_to_tensor(g_scale)],
                        [kernel, scale])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(scale), g_scale)
        assert not np.allclose(keras.ops.convert_to_numpy(kernel), before), step  # the kernel is trained
