"""Each piece of `kerastoolkit/_keras_compat.py` against the installed Keras.

Every test here fails when Keras changes the internal a piece relies on, so
that a Keras upgrade is caught here rather than as a silent change of
behaviour in a callback.
"""

import keras
import numpy as np
import pytest

from kerastoolkit import _keras_compat as compat


def test_version_guard_accepts_the_verified_keras_and_names_the_feature(monkeypatch):
    assert compat.keras_version()[:2] in compat.VERIFIED_KERAS
    compat.require_keras_version("anything")  # no error on this Keras
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.raises(RuntimeError, match=r"MyFeature relies on Keras internals.*"
                       r"Received: keras.__version__='3.99.0'"):
        compat.require_keras_version("MyFeature")
    monkeypatch.setattr(keras, "__version__", "3.15.0rc1")
    assert compat.keras_version() == (3, 15, 0)


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
