"""Presets: recipes as data, turned into the optimizers and callbacks they describe."""

import math

import keras
import numpy as np
import pytest

import kerastoolkit as kt


def _rate(optimizer, step):
    rate = optimizer._learning_rate
    value = rate(step) if callable(rate) else rate
    return float(keras.ops.convert_to_numpy(value))


def test_every_preset_is_data_with_a_source():
    assert kt.presets.names() == sorted(kt.presets.PRESETS)
    for name in kt.presets.names():
        recipe = kt.presets.get(name)
        assert recipe.description and recipe.source
        assert recipe.config["optimizer"] in kt.optimizers.OPTIMIZER_DEFAULTS


def test_adam_preset_is_the_lecture_default_with_plateau_then_early_stopping():
    recipe = kt.presets.get("adam")
    optimizer = recipe.optimizer()
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == pytest.approx(
        (1e-3, 0.9, 0.999, 1e-8)
    )
    plateau, stopping = recipe.callbacks()
    assert isinstance(plateau, kt.callbacks.PlateauDecay) and plateau.patience == 4
    assert isinstance(stopping, keras.callbacks.EarlyStopping) and stopping.restore_best_weights
    assert float(kt.presets.get("karpathy_adam").optimizer().learning_rate) == pytest.approx(3e-4)


def test_sgd_warmup_cosine_follows_goyal_and_cosine_formulas():
    recipe = kt.presets.get("sgd_warmup_cosine")
    steps, epochs, batch = 10, 20, 64
    optimizer = recipe.optimizer(steps_per_epoch=steps, epochs=epochs, batch_size=batch)
    assert optimizer.momentum == pytest.approx(0.9)
    peak = 0.1 * batch / 256  # linear scaling rule
    warmup = 5 * steps
    decay = (epochs - 5) * steps

    def expected(t):  # independent: linear warmup from 0, then cosine to 0
        if t < warmup:
            return peak * t / warmup
        u = min(t - warmup, decay)
        return 0.5 * peak * (1 + math.cos(math.pi * u / decay))

    for t in [0, 1, 17, 49, 50, 51, 120, 199, 200, 260]:
        assert _rate(optimizer, t) == pytest.approx(expected(t), rel=1e-5, abs=1e-9), t


def test_missing_arguments_are_named():
    recipe = kt.presets.get("sgd_warmup_cosine")
    with pytest.raises(ValueError, match="Received: batch_size=None"):
        recipe.optimizer(steps_per_epoch=10, epochs=5)
    with pytest.raises(ValueError, match="Received: steps_per_epoch=None"):
        recipe.optimizer(epochs=5, batch_size=32)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        recipe.optimizer(steps_per_epoch=10, epochs=0, batch_size=32)
    with pytest.raises(ValueError, match="Received: epochs=None, directory=None"):
        kt.presets.get("snapshot_ensemble").callbacks()


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ValueError, match=r"Did you mean 'karpathy_adam'.*Received: name='karpaty_adam'"):
        kt.presets.get("karpaty_adam")


def test_a_preset_trains_a_model(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target
    recipe = kt.presets.get("snapshot_ensemble")
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = recipe.callbacks(epochs=10, directory=str(tmp_path / "snaps"))
    model.fit(x[:1400], y[:1400], epochs=10, batch_size=64, verbose=0, callbacks=callbacks)
    ensemble = callbacks[0].ensemble
    assert len(ensemble.members) == 5  # 5 cycles of ceil(10 / 5) = 2 epochs, one snapshot each
    probabilities = ensemble.predict(x[1400:], verbose=0)
    assert np.mean(np.argmax(probabilities, axis=1) == y[1400:]) > 0.85
