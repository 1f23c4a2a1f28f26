"""MomentumSchedule (β applied at each step) and the LR range test (exact restore)."""

import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import LRFinder, MomentumSchedule, find_learning_rate
from tests.callbacks._util import AppliedLR, digits, probe_data, probe_model, small_cnn
from tests.harness import assert_config_roundtrip

SPE = 4


def beta_schedule():
    # β rises linearly 0.5 -> 0.9 over 6 steps, then stays (the lecture's recipe).
    return kt.schedules.warmup.Warmup(0.9, warmup_steps=6, start=0.5)


def np_beta(t):
    return 0.5 + 0.4 * t / 6 if t < 6 else 0.9


def kernel(model):
    if keras.backend.backend() == "jax":
        model.jax_state_sync()
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])


def beta_used(t):
    """β used by step t (computed per step inside the compiled step)."""
    return np_beta(t)


def weights_per_step(model, x, y, bs, epochs, callbacks):
    seen = []
    rec = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(kernel(model))
    )
    model.fit(x, y, batch_size=bs, epochs=epochs, shuffle=False, verbose=0,
              callbacks=callbacks + [rec])
    return np.array(seen)


def test_momentum_schedule_sgd_matches_heavy_ball():
    eta = 0.05
    model = probe_model(keras.optimizers.SGD(eta, momentum=0.5))
    x, y, bs = probe_data(SPE)
    ws = weights_per_step(model, x, y, bs, 3, [MomentumSchedule(beta_schedule())])
    m, w, expected = 0.0, 0.0, []
    for t in range(3 * SPE):  # gradient of mean(w·1) is 1
        m = beta_used(t) * m - eta * 1.0
        w = w + m
        expected.append(w)
    np.testing.assert_allclose(ws, expected, rtol=1e-5, atol=1e-6)
    # After fit the hyperparameter is a float again (JSON-safe config).
    assert model.optimizer.momentum == pytest.approx(beta_used(3 * SPE - 1))
    assert isinstance(model.optimizer.get_config()["momentum"], float)


def test_momentum_schedule_adam_beta_1():
    eta, b2, eps = 0.01, 0.999, 1e-7
    model = probe_model(keras.optimizers.Adam(eta, beta_2=b2, epsilon=eps))
    x, y, bs = probe_data(SPE)
    ws = weights_per_step(model, x, y, bs, 2, [MomentumSchedule(beta_schedule())])
    m = v = w = 0.0
    expected = []
    for t in range(2 * SPE):  # Keras's Adam with the step's β1
        b1, step = beta_used(t), t + 1
        alpha = eta * np.sqrt(1 - b2**step) / (1 - b1**step)
        m += (1.0 - m) * (1 - b1)
        v += (1.0 - v) * (1 - b2)
        w -= alpha * m / (np.sqrt(v) + eps)
        expected.append(w)
    np.testing.assert_allclose(ws, expected, rtol=1e-4, atol=1e-6)


def test_momentum_schedule_rejects():
    with pytest.raises(TypeError, match="schedule=0.9"):
        MomentumSchedule(0.9)
    with pytest.raises(ValueError, match="attribute='beta'"):
        MomentumSchedule(beta_schedule(), attribute="beta")
    model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(SPE)
    with pytest.raises(ValueError, match="momentum=0"):
        model.fit(x, y, batch_size=bs, verbose=0, callbacks=[MomentumSchedule(beta_schedule())])
    assert_config_roundtrip(MomentumSchedule(beta_schedule(), attribute="beta_1"))


def test_lr_finder_sweep_rates_and_batch_losses():
    lo, hi, n = 1e-3, 1.0, 10
    model = probe_model(keras.optimizers.SGD(0.3))
    x, y, bs = probe_data(12)
    finder = LRFinder(min_lr=lo, max_lr=hi, num_steps=n, smoothing=0.5,
                      divergence_threshold=1e6)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0, callbacks=[finder, rec])
    rates = lo * (hi / lo) ** (np.arange(n) / (n - 1))
    np.testing.assert_allclose(finder.learning_rates, rates, rtol=1e-6)
    np.testing.assert_allclose(rec.applied, rates, rtol=3e-4)  # stops after n steps
    # loss = mean(w·1) = w before the step: minus the sum of earlier rates.
    own = -np.concatenate([[0.0], np.cumsum(rates)[:-1]])
    np.testing.assert_allclose(finder.losses, own, rtol=1e-4, atol=1e-5)
    avg, smooth = 0.0, []
    for i, loss in enumerate(own):
        avg = 0.5 * avg + 0.5 * loss
        smooth.append(avg / (1 - 0.5 ** (i + 1)))
    np.testing.assert_allclose(finder.smoothed_losses, smooth, rtol=1e-4, atol=1e-5)
    grad = np.gradient(np.array(smooth), np.log(rates))
    assert finder.steepest == pytest.approx(rates[np.argmin(grad)])
    # The rate and weights are back: w = 0, lr = 0.3.
    assert kernel(model) == 0.0
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.3)


@pytest.mark.parametrize("schedule", [False, True])
def test_find_learning_rate_restores_bit_identically(schedule, tmp_path):
    (x, y), _ = digits()
    model = small_cnn()
    lr = (keras.optimizers.schedules.ExponentialDecay(1e-3, 100, 0.9) if schedule else 1e-3)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # non-zero Adam state
    lr_obj = model.optimizer._learning_rate
    before_w = [np.array(w) for w in model.get_weights()]
    before_o = [np.array(v) for v in model.optimizer.variables]
    finder = find_learning_rate(model, x, y, batch_size=32, min_lr=1e-5, max_lr=10.0,
                                num_steps=30, plot_path=str(tmp_path / "lr.png"))
    assert 3 <= len(finder.losses) <= 30
    after_w, after_o = model.get_weights(), model.optimizer.variables
    assert len(after_w) == len(before_w) and len(after_o) == len(before_o)
    assert all(np.array_equal(a, b) for a, b in zip(before_w, after_w))
    assert all(np.array_equal(np.array(a), b) for a, b in zip(after_o, before_o))
    assert model.optimizer._learning_rate is lr_obj
    assert os.path.getsize(tmp_path / "lr.png") > 1000
    # Training continues normally afterwards.
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)


def test_lr_finder_stops_when_loss_explodes():
    (x, y), _ = digits()
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    finder = find_learning_rate(model, x.reshape(len(x), -1), y, batch_size=16, min_lr=1e-3,
                                max_lr=1e4, num_steps=70)
    assert len(finder.losses) < 70
    s = np.array(finder.smoothed_losses)
    assert not np.isfinite(s[-1]) or s[-1] > 4.0 * np.nanmin(s[:-1])


def test_lr_finder_rejects_and_config():
    with pytest.raises(ValueError, match="max_lr=0.001"):
        LRFinder(min_lr=0.01, max_lr=0.001)
    with pytest.raises(ValueError, match="min_lr=0"):
        LRFinder(min_lr=0.0)
    with pytest.raises(ValueError, match="num_steps=1"):
        LRFinder(num_steps=1)
    assert_config_roundtrip(LRFinder(min_lr=1e-6, max_lr=1.0, num_steps=50))
