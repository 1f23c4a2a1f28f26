"""Configs, argument checks, `get` by name and `bakeoff`."""

import inspect
import os

import keras
import pytest

import kerastoolkit as kt
from tests.harness import assert_config_roundtrip


def all_optimizers():
    return [
        kt.optimizers.SGD(0.02, momentum=0.8, nesterov=True, weight_decay=1e-4),
        kt.optimizers.SGD(
            keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5),
            momentum=keras.optimizers.schedules.PolynomialDecay(0.5, 1000, 0.99),
        ),
        kt.optimizers.SWATS(3e-4, beta_1=0.8, beta_2=0.99, epsilon=1e-8,
                            switch_tolerance=1e-5, weight_decay=0.01),
        kt.optimizers.Lookahead(keras.optimizers.Adam(1e-3), sync_period=7,
                                slow_step_size=0.3),
        kt.optimizers.Lookahead(kt.optimizers.SWATS(1e-3), sync_period=3),
        kt.optimizers.LARS(2.0, momentum=0.85, weight_decay=1e-4,
                           trust_coefficient=0.01, epsilon=1e-9,
                           exclude_from_adaptation=["bias", "gamma"]),
        kt.optimizers.GradientNoise(keras.optimizers.SGD(0.1), eta=0.3,
                                    gamma=0.6, seed=4),
        kt.optimizers.GradientNoise(
            kt.optimizers.Lookahead(kt.optimizers.LARS()), eta=1.0),
    ]


@pytest.mark.parametrize("index", range(len(all_optimizers())))
def test_config_roundtrip(index):
    optimizer = all_optimizers()[index]
    rebuilt = assert_config_roundtrip(optimizer)
    config = optimizer.get_config()
    # Every constructor argument is in the config.
    params = set(inspect.signature(type(optimizer).__init__).parameters)
    assert params - {"self"} <= set(config)
    if hasattr(optimizer, "inner_optimizer"):
        assert type(rebuilt.inner_optimizer) is type(optimizer.inner_optimizer)
        assert (rebuilt.inner_optimizer.get_config()
                == optimizer.inner_optimizer.get_config())


def test_momentum_schedule_roundtrip_keeps_values():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.5, 10, 0.9)
    rebuilt = assert_config_roundtrip(kt.optimizers.SGD(0.1, momentum=schedule))
    for step in (0, 3, 10, 20):
        assert float(rebuilt.momentum(step)) == pytest.approx(float(schedule(step)))


def test_lars_weight_decay_is_not_applied_twice():
    optimizer = kt.optimizers.LARS(weight_decay=0.01)
    assert optimizer.weight_decay is None  # Keras's decoupled decay is off
    assert optimizer.get_config()["weight_decay"] == 0.01


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: kt.optimizers.SGD(-0.1), "learning_rate=-0.1"),
        (lambda: kt.optimizers.SGD(0.1, momentum=1.0), "momentum=1.0"),
        (lambda: kt.optimizers.SGD(0.1, momentum=-0.1), "momentum=-0.1"),
        (lambda: kt.optimizers.SWATS(-1e-3), "learning_rate=-0.001"),
        (lambda: kt.optimizers.SWATS(beta_1=1.0), "beta_1=1.0"),
        (lambda: kt.optimizers.SWATS(beta_2=1.5), "beta_2=1.5"),
        (lambda: kt.optimizers.SWATS(switch_tolerance=-1.0), "switch_tolerance=-1.0"),
        (lambda: kt.optimizers.LARS(-1.0), "learning_rate=-1.0"),
        (lambda: kt.optimizers.LARS(momentum=1.2), "momentum=1.2"),
        (lambda: kt.optimizers.LARS(trust_coefficient=0.0), "trust_coefficient=0.0"),
        (lambda: kt.optimizers.LARS(weight_decay=-0.1), "weight_decay=-0.1"),
        (lambda: kt.optimizers.Lookahead(keras.optimizers.SGD(), sync_period=0),
         "sync_period=0"),
        (lambda: kt.optimizers.Lookahead(keras.optimizers.SGD(),
                                         slow_step_size=1.5), "slow_step_size=1.5"),
        (lambda: kt.optimizers.GradientNoise(keras.optimizers.SGD(), eta=0.0),
         "eta=0.0"),
        (lambda: kt.optimizers.GradientNoise(keras.optimizers.SGD(), gamma=-1.0),
         "gamma=-1.0"),
    ],
)
def test_bad_values_raise_value_error(make, fragment):
    with pytest.raises(ValueError, match=r"Received: .*" + fragment.replace(".", r"\.")):
        make()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: kt.optimizers.Lookahead("adam"), "optimizer='adam'"),
        (lambda: kt.optimizers.Lookahead(keras.layers.Dense(2)), "optimizer=<Dense"),
        (lambda: kt.optimizers.GradientNoise(None), "optimizer=None"),
        (lambda: kt.optimizers.SGD(0.1, momentum="high"), "momentum='high'"),
        (lambda: kt.optimizers.SGD("fast"), "learning_rate='fast'"),
        (lambda: kt.optimizers.LARS(exclude_from_adaptation="bias"),
         "exclude_from_adaptation='bias'"),
        (lambda: kt.optimizers.GradientNoise(keras.optimizers.SGD(), seed=1.5),
         "seed=1.5"),
        (lambda: kt.optimizers.get(3), "name=3"),
    ],
)
def test_wrong_types_raise_type_error(make, fragment):
    with pytest.raises(TypeError, match=r"Received: " + fragment.replace(".", r"\.")):
        make()


# --- get ----------------------------------------------------------------------


def test_get_lecture_defaults():
    adam = kt.optimizers.get("adam")
    assert type(adam) is keras.optimizers.Adam
    config = adam.get_config()
    assert config["learning_rate"] == pytest.approx(1e-3)
    assert (config["beta_1"], config["beta_2"], config["epsilon"]) == (0.9, 0.999, 1e-8)
    karpathy = kt.optimizers.get("karpathy")
    assert type(karpathy) is keras.optimizers.Adam
    assert karpathy.get_config()["learning_rate"] == pytest.approx(3e-4)
    sgd = kt.optimizers.get("sgd")
    assert type(sgd) is keras.optimizers.SGD and sgd.momentum == 0.9
    assert kt.optimizers.get("rmsprop").rho >= 0.9
    assert type(kt.optimizers.get("adagrad")) is keras.optimizers.Adagrad
    assert type(kt.optimizers.get("adamw")) is keras.optimizers.AdamW
    lookahead = kt.optimizers.get("lookahead")
    assert type(lookahead.inner_optimizer) is keras.optimizers.Adam
    noise = kt.optimizers.get("gradient_noise")
    assert type(noise.inner_optimizer) is keras.optimizers.Adam
    scheduled = kt.optimizers.get("sgd_momentum_schedule")
    assert scheduled.scheduled_momentum
    assert float(scheduled.momentum(0)) == pytest.approx(0.5)
    assert float(scheduled.momentum(10**6)) == pytest.approx(0.99)


def test_get_every_name_builds_and_matches_its_data():
    for name in kt.optimizers.names():
        optimizer = kt.optimizers.get(name)
        assert isinstance(optimizer, keras.optimizers.Optimizer)
        entry = kt.optimizers.OPTIMIZER_DEFAULTS[name]
        config = optimizer.get_config()
        for key, value in entry["config"].items():
            if isinstance(value, float):
                assert config[key] == pytest.approx(value), (name, key)
        assert entry["description"] and entry["source"]


def test_get_overrides_and_instances():
    sgd = kt.optimizers.get("sgd", learning_rate=0.3, nesterov=True)
    assert sgd.get_config()["learning_rate"] == pytest.approx(0.3)
    assert sgd.nesterov
    lookahead = kt.optimizers.get("lookahead", optimizer="sgd", sync_period=9)
    assert lookahead.sync_period == 9
    assert type(lookahead.inner_optimizer) is keras.optimizers.SGD
    instance = keras.optimizers.Nadam()
    assert kt.optimizers.get(instance) is instance
    assert kt.optimizers.get("Karpathy").get_config()["learning_rate"] == pytest.approx(3e-4)
    # Each call gives a new optimizer.
    assert kt.optimizers.get("adam") is not kt.optimizers.get("adam")


def test_get_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"Did you mean: adam.*Received: name='adma'"):
        kt.optimizers.get("adma")
    with pytest.raises(ValueError, match=r"Did you mean: .*lookahead"):
        kt.optimizers.get("look_ahead")
    with pytest.raises(ValueError, match="Received: overrides"):
        kt.optimizers.get(keras.optimizers.Adam(), learning_rate=0.1)


# --- bakeoff ------------------------------------------------------------------


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


def build_model(optimizer):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_bakeoff_ranks_from_same_start(tmp_path):
    train, val = digits()
    plot = os.path.join(tmp_path, "bakeoff.png")
    result = kt.optimizers.bakeoff(
        build_model, train, val,
        ["adam", ("frozen_a", keras.optimizers.SGD(0.0)),
         ("frozen_b", keras.optimizers.SGD(0.0))],
        epochs=2, batch_size=64, plot_path=plot,
    )
    by_name = {e.name: e for e in result.entries}
    assert set(by_name) == {"adam", "frozen_a", "frozen_b"}
    # Same initial weights: two optimizers that never move agree exactly.
    assert by_name["frozen_a"].history == by_name["frozen_b"].history
    # Ranked best first by the best monitored value; epoch is where it was.
    bests = [e.best for e in result.entries]
    assert bests == sorted(bests, reverse=True)
    for entry in result.entries:
        assert entry.best == max(entry.history)
        assert entry.history[entry.epoch - 1] == entry.best
        assert entry.seconds > 0
    assert by_name["adam"].best > by_name["frozen_a"].best
    table = str(result)
    assert table.splitlines()[2].split()[1] == result.entries[0].name
    assert [row["name"] for row in result.as_dicts()] == [e.name for e in result.entries]
    assert os.path.getsize(plot) > 1000

    by_loss = kt.optimizers.bakeoff(build_model, train, val, ["adam", "karpathy"],
                                    epochs=1, monitor="val_loss", batch_size=64)
    assert by_loss.mode == "min"
    assert by_loss.entries[0].best <= by_loss.entries[1].best


def test_bakeoff_bad_arguments():
    train, val = digits()
    with pytest.raises(ValueError, match="Received: candidates=\\[\\]"):
        kt.optimizers.bakeoff(build_model, train, val, [], 1)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        kt.optimizers.bakeoff(build_model, train, val, ["adam"], 0)
    with pytest.raises(TypeError, match="Received: candidate=3"):
        kt.optimizers.bakeoff(build_model, train, val, [3], 1)
    with pytest.raises(ValueError, match="Received: labels"):
        kt.optimizers.bakeoff(build_model, train, val, ["adam", "adam"], 1)
    with pytest.raises(ValueError, match="Received: monitor='val_auc'"):
        kt.optimizers.bakeoff(build_model, (train[0][:64], train[1][:64]), val,
                              ["adam"], 1, monitor="val_auc")
