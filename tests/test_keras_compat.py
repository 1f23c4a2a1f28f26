"""Each piece of `kerastoolkit/_keras_compat.py` against the installed Keras.

Every test here fails when Keras changes the internal a piece relies on, so
that a Keras upgrade is caught here rather than as a silent change of
behaviour in a callback.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from kerastoolkit import _keras_compat as compat


@pytest.fixture
def unverified_keras(monkeypatch):
    """Keras reports a version outside `VERIFIED_KERAS`; the once-per-process warning is reset."""
    monkeypatch.setattr(compat, "_WARNED_VERSIONS", set())
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    return "3.99.0"


def test_version_guard_accepts_the_verified_keras_silently():
    assert compat.keras_version()[:2] in compat.VERIFIED_KERAS
    with warnings.catch_warnings():
        warnings.simplefilter("error", compat.UnverifiedKerasWarning)  # none on this Keras
        assert compat.require_keras_version("anything") is True


def test_version_parsing(monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.15.0rc1")
    assert compat.keras_version() == (3, 15, 0)
    monkeypatch.setattr(keras, "__version__", "4")
    assert compat.keras_version() == (4, 0, 0)


def test_unverified_keras_warns_once_naming_the_versions_then_the_pieces_run(unverified_keras):
    with pytest.warns(compat.UnverifiedKerasWarning, match=r"verified on Keras 3\.15\.x; this is Keras 3\.99\.0.*MyFeature"):
        assert compat.require_keras_version("MyFeature") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error", compat.UnverifiedKerasWarning)  # once per process
        assert compat.require_keras_version("Other") is False
        # Every piece tries its internal, which this Keras still has.
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        a, b = keras.Variable(np.zeros(2, "float32")), keras.Variable(np.zeros(3, "float32"))
        optimizer.build([a, b])
        assert isinstance(compat.learning_rate_object(optimizer), keras.Variable)
        assert compat.variable_index(optimizer, b) == 1
        assert compat.built_variables(optimizer) == [a, b]
        keras.random.normal((1,))
        state = compat.global_seed_state()
        compat.set_global_seed_state(state)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="preflight trains TF copies")
def test_preflight_runs_on_an_unverified_keras_whose_internals_did_not_change(unverified_keras):
    import kerastoolkit as kt

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.warns(compat.UnverifiedKerasWarning, match="3.99.0"):
        report = kt.preflight.check(model, (x, y), num_examples=64, overfit_steps=5, signal_steps=5)
    assert "overfit_one_batch" in report.checks


def _defining_class(obj, name):
    return next(c for c in type(obj).__mro__ if name in vars(c))


@pytest.mark.parametrize("piece, internal", [
    ("variable_index", "_get_variable_index"),
    ("built_variables", "_trainable_variables"),
    ("learning_rate_object", "_learning_rate"),
])
def test_a_changed_internal_raises_a_clear_error_naming_it(unverified_keras, monkeypatch, piece, internal):
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    variable = keras.Variable(np.zeros(2, "float32"))
    optimizer.build([variable])
    if internal in vars(optimizer):  # an instance attribute: a Keras that no longer sets it
        monkeypatch.delattr(optimizer, internal)
    else:
        monkeypatch.delattr(_defining_class(optimizer, internal), internal)
    args = (optimizer, variable) if piece == "variable_index" else (optimizer,)
    with pytest.warns(compat.UnverifiedKerasWarning):
        with pytest.raises(compat.KerasInternalChanged, match=rf"`Optimizer\.{internal}`.*"
                           r"verified on Keras 3\.15\.x.*Received: keras.__version__='3\.99\.0'"):
            getattr(compat, piece)(*args)
    assert issubclass(compat.KerasInternalChanged, RuntimeError)


def test_a_changed_seed_module_raises_a_clear_error(unverified_keras, monkeypatch):
    from keras.src.random import seed_generator

    monkeypatch.delattr(seed_generator, "GLOBAL_SEED_GENERATOR")
    with pytest.warns(compat.UnverifiedKerasWarning):
        with pytest.raises(compat.KerasInternalChanged, match="random-state restoring"):
            compat.global_seed_state()


def test_variable_index_finds_each_variable_slots():
    """What Keras's own optimizers do in `update_step`: the variable's position at build."""
    variables = [keras.Variable(np.zeros(n, "float32"), name=f"v{n}") for n in (2, 3, 4)]
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build(variables)
    for i, variable in enumerate(variables):
        assert compat.variable_index(optimizer, variable) == i
        assert tuple(optimizer._momentums[i].shape) == tuple(variable.shape)  # Keras's own slot order
    assert compat.built_variables(optimizer) == variables
    assert compat.built_variables(optimizer) is not compat.built_variables(optimizer)  # a copy


def test_backend_update_step_is_the_hook_keras_calls_once_per_step():
    """kt.optimizers.SGD relies on it: the value given with the rate reaches every update_step."""
    seen = {"hook": 0, "rates": []}

    class Probe(keras.optimizers.Optimizer):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            seen["hook"] += 1
            compat.backend_update_step(super(), grads, trainable_variables, (learning_rate, "extra"))

        def update_step(self, gradient, variable, learning_rate):
            seen["rates"].append(learning_rate[1])
            self.assign_sub(variable, ops.multiply(gradient, ops.cast(learning_rate[0], variable.dtype)))

    variables = [keras.Variable(np.ones(2, "float32")), keras.Variable(np.ones(3, "float32"))]
    optimizer = Probe(learning_rate=0.5)
    optimizer.apply([ops.ones(2), ops.ones(3)], variables)
    assert seen == {"hook": 1, "rates": ["extra", "extra"]}
    np.testing.assert_allclose(ops.convert_to_numpy(variables[1]), [0.5, 0.5, 0.5])


def test_normal_from_seed_draws_what_keras_draws_from_a_generator_in_that_state():
    generator = keras.random.SeedGenerator(7)
    state = ops.convert_to_numpy(generator.state).copy()
    expected = ops.convert_to_numpy(keras.random.normal((6,), stddev=2.0, seed=generator))
    seed = ops.convert_to_tensor(state, dtype=generator.state.dtype)
    got = ops.convert_to_numpy(compat.normal_from_seed((6,), seed, stddev=2.0))
    np.testing.assert_array_equal(got, expected)
    # No state: the same seed gives the same draw; the stand-in holds no variable.
    np.testing.assert_array_equal(ops.convert_to_numpy(compat.normal_from_seed((6,), seed, stddev=2.0)), expected)
    assert not [v for v in vars(compat._FixedSeed(seed)).values() if isinstance(v, keras.Variable)]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fix is for TensorFlow")
def test_multi_worker_fix_follows_the_same_policy(unverified_keras, monkeypatch):
    with pytest.warns(compat.UnverifiedKerasWarning, match="multi-worker"):
        compat.check_multi_worker_keras()  # unchanged internals: no error
    monkeypatch.setitem(compat.MULTI_WORKER_FINGERPRINTS, "reduce_per_replica", "0" * 16)
    with pytest.raises(compat.KerasInternalChanged, match=r"have changed.*reduce_per_replica"):
        compat.check_multi_worker_keras()


def test_learning_rate_object_is_the_tracked_variable_or_the_schedule():
    optimizer = keras.optimizers.SGD(0.1)
    rate = compat.learning_rate_object(optimizer)
    assert isinstance(rate, keras.Variable)
    assert any(v is rate for v in optimizer.variables)  # saved with the optimizer
    rate.assign(0.05)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.05)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    optimizer = keras.optimizers.Adam(schedule)
    assert compat.learning_rate_object(optimizer) is schedule
    assert not isinstance(optimizer.learning_rate, type(schedule))  # public: the value
    # Public assignment of a schedule over a schedule keeps the variables.
    before = len(optimizer.variables)
    optimizer.learning_rate = keras.optimizers.schedules.ExponentialDecay(0.2, 10, 0.5)
    assert len(optimizer.variables) == before


def test_untracked_attribute_stays_out_of_the_optimizer_variables():
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    count = len(optimizer.variables)
    compat.set_untracked_attribute(optimizer, "momentum", keras.Variable(0.5, name="beta"))
    assert len(optimizer.variables) == count
    # Why the piece exists: Keras's own `__setattr__` would track it.
    tracked = keras.optimizers.SGD(0.1, momentum=0.9)
    tracked.build([keras.Variable(np.zeros(2, "float32"))])
    tracked.momentum = keras.Variable(0.5, name="beta")
    assert len(tracked.variables) == count + 1


def test_scheduled_hyperparameter_is_read_by_keras_sgd_every_step():
    """Keras SGD reads `self.momentum` through `.value`; `iterations` is `_iterations`."""
    variable = keras.Variable(np.zeros(1, "float32"))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.5)
    optimizer.build([variable])
    assert optimizer.iterations is optimizer._iterations
    beta = keras.optimizers.schedules.PolynomialDecay(0.5, 2, 0.9)  # 0.5, 0.7, 0.9
    hyper = compat.ScheduledHyperparameter(0.5, dtype="float32", trainable=False,
                                           autocast=False, name="momentum")
    hyper.attach(beta, optimizer, 0.5)
    compat.set_untracked_attribute(optimizer, "momentum", hyper)
    assert hyper != 0 and hyper > 0  # Python tests while tracing use the first value
    m, w = 0.0, 0.0
    for t in range(3):
        optimizer.apply([keras.ops.ones(1)], [variable])
        m = (0.5 + 0.2 * min(t, 2)) * m - 0.1  # Sutskever et al.: m = βm − ηg
        w += m
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [w], rtol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF train function")
def test_wrapped_train_step_runs_in_fit_and_unwraps():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    calls = []

    def wrapper(original):
        def step(data):
            calls.append(1)  # traced once
            return original(data)
        return step

    compat.wrap_train_step(model, wrapper)
    x = np.zeros((8, 2), "float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert calls
    compat.unwrap_train_step(model)
    calls.clear()
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert not calls and "train_step" not in vars(model)


def test_scheduled_hyperparameter_saves_a_float_in_the_optimizer_config():
    optimizer = keras.optimizers.Adam(0.1, beta_1=0.5)
    optimizer.build([keras.Variable(np.zeros(1, "float32"))])
    beta = keras.optimizers.schedules.PolynomialDecay(0.5, 2, 0.9)
    hyper = compat.ScheduledHyperparameter(0.5, dtype="float32", trainable=False,
                                           autocast=False, name="beta_1")
    hyper.attach(beta, optimizer, 0.5)
    compat.install_scheduled_hyperparameter(optimizer, "beta_1", hyper)
    optimizer.iterations.assign(1)
    config = optimizer.get_config()
    assert isinstance(config["beta_1"], float) and config["beta_1"] == pytest.approx(0.7)
    assert keras.optimizers.Adam.from_config(config).beta_1 == pytest.approx(0.7)
    compat.remove_scheduled_hyperparameter(optimizer, "beta_1", 0.7)
    assert "get_config" not in vars(optimizer) and optimizer.get_config()["beta_1"] == 0.7


def test_loss_tracker_variables_hold_the_batch_size_weighted_sum_of_losses():
    """`train_step` updates the `"loss"` Mean with (batch loss, batch size)."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    assert compat.loss_tracker_variables(keras.Sequential([keras.Input((3,))])) is None
    x = np.arange(15, dtype="float32").reshape(5, 3) / 10
    y = np.ones((5, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)  # batches of 2, 2, 1
    total, count = compat.loss_tracker_variables(model)
    w = model.get_weights()[0]
    per_example = ((x @ w - y) ** 2).ravel()
    # Independent of Keras: the sum over batches of (mean batch loss x batch size).
    expected = sum(per_example[i:i + 2].mean() * len(per_example[i:i + 2]) for i in (0, 2, 4))
    assert float(keras.ops.convert_to_numpy(count)) == 5.0
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(total)), expected, rtol=1e-5)


def test_global_seed_state_round_trips_the_unseeded_draws():
    """Unseeded Keras draws advance the global SeedGenerator; restoring it repeats them."""
    keras.random.normal((2,))  # make sure the global generator exists
    state = compat.global_seed_state()
    assert state is not None
    first = keras.ops.convert_to_numpy(keras.random.normal((4,)))
    assert not np.array_equal(compat.global_seed_state(), state)  # the draw moved it
    compat.set_global_seed_state(state)
    again = keras.ops.convert_to_numpy(keras.random.normal((4,)))
    np.testing.assert_array_equal(first, again)
