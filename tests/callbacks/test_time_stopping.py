"""TimeStopping with a fake clock: each batch "takes" a fixed time, so where the
run stops is exact and the test is fast."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import time_stopping
from tests.callbacks._util import InjectMetric, probe_data, probe_model
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip

SPE = 4  # batches per epoch


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Tick(keras.callbacks.Callback):
    """Advances the fake clock by `seconds[k]` during batch k (listed first)."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds, self.batches = clock, seconds, 0

    def on_train_batch_end(self, batch, logs=None):
        self.clock.now += self.seconds(self.batches)
        self.batches += 1


class WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time_stopping, "_clock", fake)
    return fake


def run(clock, stop, epochs=10, seconds_per_batch=lambda k: 1.0, extra=()):
    model = probe_model(keras.optimizers.SGD(0.01))
    x, y, bs = probe_data(SPE)
    history = model.fit(x, y, batch_size=bs, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[Tick(clock, seconds_per_batch), *extra, stop])
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return model, len(history.epoch), steps


def test_epoch_boundary_stops_after_the_epoch_that_spent_the_budget(clock):
    # Epochs end at 4, 8, 12 s: the budget of 10 s is spent during epoch 3.
    stop = kt.callbacks.TimeStopping(10)
    _, epochs, steps = run(clock, stop)
    assert (epochs, steps) == (3, 12)
    assert stop.stopped_epoch == 2 and stop.stopped_batch is None
    assert stop.elapsed == pytest.approx(12.0)


def test_anticipate_stops_before_an_epoch_that_would_overrun(clock):
    # After 8 s another 4-second epoch would end at 12 s > 10 s.
    stop = kt.callbacks.TimeStopping(10, anticipate=True)
    _, epochs, steps = run(clock, stop)
    assert (epochs, steps, stop.stopped_epoch) == (2, 8, 1)
    # The longest epoch so far counts: a slow second epoch (batches of 2 s).
    stop = kt.callbacks.TimeStopping(13, anticipate=True)
    _, epochs, _ = run(clock, stop, seconds_per_batch=lambda k: 2.0 if 4 <= k < 8 else 1.0)
    assert epochs == 2  # 4 + 8 = 12 s, and 12 + 8 > 13


def test_batch_boundary_stops_within_a_batch(clock):
    stop = kt.callbacks.TimeStopping(10, boundary="batch")
    _, epochs, steps = run(clock, stop)
    # The 10th batch ends at 10 s: epoch 3, batch 2; Keras closes that epoch.
    assert (steps, epochs) == (10, 3)
    assert (stop.stopped_epoch, stop.stopped_batch) == (2, 1)
    # 10.5 s: plain stops after the 11th batch (11 s); anticipating, after the
    # 10th, since another 1-second batch would end at 11 s.
    _, _, steps = run(clock, kt.callbacks.TimeStopping(10.5, boundary="batch"))
    assert steps == 11
    anticipating = kt.callbacks.TimeStopping(10.5, boundary="batch", anticipate=True)
    _, _, steps = run(clock, anticipating)
    assert steps == 10 and anticipating.elapsed == pytest.approx(10.0)


def test_budget_not_reached_trains_every_epoch(clock):
    stop = kt.callbacks.TimeStopping()  # a day
    _, epochs, _ = run(clock, stop, epochs=3)
    assert epochs == 3 and stop.stopped_epoch is None


def test_restores_the_best_epoch_when_the_budget_stops_the_run(clock):
    recorder = WeightsPerEpoch()
    scores = [3.0, 1.0, 2.0, 2.5, 0.5]
    stop = kt.callbacks.TimeStopping(14, restore_best_weights=True, monitor="score")
    model, epochs, _ = run(clock, stop, extra=[InjectMetric("score", scores), recorder])
    assert epochs == 4 and stop.best_epoch == 1  # 16 s > 14 s after epoch 4
    for got, want in zip(model.get_weights(), recorder.weights[1]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(recorder.weights[1][0], recorder.weights[3][0])
    # Within budget: the last weights stay (as EarlyStopping does).
    keep = kt.callbacks.TimeStopping(100, restore_best_weights=True, monitor="score")
    recorder = WeightsPerEpoch()
    model, epochs, _ = run(clock, keep, epochs=3, extra=[InjectMetric("score", scores), recorder])
    np.testing.assert_array_equal(model.get_weights()[0], recorder.weights[-1][0])


def test_max_mode_and_missing_monitor(clock):
    recorder = WeightsPerEpoch()
    stop = kt.callbacks.TimeStopping(10, restore_best_weights=True, monitor="val_accuracy")
    model, _, _ = run(clock, stop, extra=[InjectMetric("val_accuracy", [0.5, 0.9, 0.7]),
                                          recorder])
    assert stop.best_epoch == 1  # "auto" maximises accuracy
    np.testing.assert_array_equal(model.get_weights()[0], recorder.weights[1][0])
    missing = kt.callbacks.TimeStopping(10, restore_best_weights=True)
    with pytest.warns(UserWarning, match="val_loss"):
        run(clock, missing)


def test_verbose_line(clock, capsys):
    stop = kt.callbacks.TimeStopping(10, boundary="batch", verbose=1)
    run(clock, stop)
    assert "TimeStopping: stopped at epoch 3, batch 2 after 10.0 s (budget 10 s)" in capsys.readouterr().out


def test_real_clock():
    """The real clock: any budget shorter than an epoch stops after the first."""
    stop = kt.callbacks.TimeStopping(1e-6)
    model = probe_model(keras.optimizers.SGD(0.01))
    x, y, bs = probe_data(SPE)
    history = model.fit(x, y, batch_size=bs, epochs=5, verbose=0, callbacks=[stop])
    assert len(history.epoch) == 1 and stop.elapsed > 1e-6


def test_config_and_bad_arguments():
    assert_config_roundtrip(kt.callbacks.TimeStopping(
        120.5, boundary="batch", anticipate=True, restore_best_weights=True,
        monitor="val_accuracy", mode="max", verbose=1))
    for kwargs, error, fragment in [
        ({"seconds": 0}, ValueError, "seconds=0.0"),
        ({"seconds": -5}, ValueError, "seconds=-5.0"),
        ({"seconds": float("inf")}, ValueError, "seconds=inf"),
        ({"seconds": "1h"}, TypeError, "seconds='1h'"),
        ({"boundary": "step"}, ValueError, "boundary='step'"),
        ({"anticipate": 1}, TypeError, "anticipate=1"),
        ({"restore_best_weights": "yes"}, TypeError, "restore_best_weights='yes'"),
        ({"mode": "lowest"}, ValueError, "mode='lowest'"),
        ({"monitor": ""}, TypeError, "monitor=''"),
    ]:
        with pytest.raises(error, match=r"Received: " + fragment.replace(".", r"\.")):
            kt.callbacks.TimeStopping(**kwargs)


@requires_tensorflow
def test_batch_boundary_and_restore_under_mirrored_strategy(clock, mirrored_strategy):
    with mirrored_strategy.scope():
        model = probe_model(keras.optimizers.SGD(0.01))
    x, y, _ = probe_data(SPE, batch_size=8)
    recorder = WeightsPerEpoch()
    stop = kt.callbacks.TimeStopping(10, boundary="batch", restore_best_weights=True,
                                     monitor="score")
    model.fit(x, y, batch_size=8, epochs=10, shuffle=False, verbose=0,
              callbacks=[Tick(clock, lambda k: 1.0), InjectMetric("score", [2.0, 1.0, 3.0]),
                         recorder, stop])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 10
    np.testing.assert_array_equal(model.get_weights()[0], recorder.weights[1][0])
