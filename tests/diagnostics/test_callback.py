"""CurveDiagnostics on real (tiny, seeded) `fit` runs, checked against NumPy."""

import json
import os

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from kerastoolkit.diagnostics import CurveDiagnostics
from kerastoolkit.diagnostics import diagnose
from kerastoolkit.diagnostics import locate_non_finite
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip


def digits(n=512):
    d = load_digits()
    x = (d.data[:n] / 16.0 - 0.3).astype("float32")
    return x, d.target[:n].astype("int32")


def mlp(hidden=32, bias_initializer="zeros"):
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu", name="hidden",
                           bias_initializer=bias_initializer),
        keras.layers.Dense(10, name="logits"),
    ])


def compile_(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def shuffled(x, y, batch_size=32):
    """Reshuffled every epoch (NumPy `shuffle=True` repeats one order once
    `keras.utils.set_random_seed` was called, on the TF backend)."""
    if keras.backend.backend() != "tensorflow":
        return dict(x=x, y=y, batch_size=batch_size, shuffle=True)
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return dict(x=ds.shuffle(len(x), seed=3, reshuffle_each_iteration=True).batch(batch_size))


def np_cross_entropy(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y]


def test_step_losses_are_each_batch_own_loss():
    x, y = digits(256)
    model = compile_(mlp(), keras.optimizers.SGD(0.0))  # weights stay put
    cb = CurveDiagnostics()
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    losses, epochs, batches = cb.step_losses()
    per_sample = np_cross_entropy(keras.ops.convert_to_numpy(model(x)).astype("float64"), y)
    expected = per_sample.reshape(8, 32).mean(axis=1)
    np.testing.assert_allclose(losses, np.tile(expected, 2), rtol=2e-4)
    assert epochs.tolist() == [0] * 8 + [1] * 8 and batches.tolist() == list(range(8)) * 2
    assert cb.report.steps_per_epoch == 8


@pytest.mark.slow
def test_sorted_unshuffled_run_is_unshuffled():
    x, y = digits(1024)
    order = np.argsort(y, kind="stable")
    model = compile_(mlp(), keras.optimizers.Adam(1e-3))
    cb = CurveDiagnostics()
    model.fit(x[order], y[order], batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=[cb])
    assert cb.report.codes == ["unshuffled"]
    assert cb.report.findings[0].evidence["steps_per_epoch"] == 32


@pytest.mark.slow
def test_learning_rate_far_too_low_is_not_training_and_healthy_is_clean():
    x, y = digits(1024)
    model = compile_(mlp(), keras.optimizers.SGD(1e-6))
    cb = CurveDiagnostics()
    model.fit(**shuffled(x, y), epochs=3, verbose=0, callbacks=[cb])
    assert cb.report.codes == ["not_training"]

    keras.utils.set_random_seed(1)
    xv, yv = digits(1797)
    model = compile_(mlp(64), keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(3e-3, 10 * 32)))
    cb = CurveDiagnostics()
    model.fit(**shuffled(x, y), epochs=10, verbose=0, callbacks=[cb],
              validation_data=(xv[1024:], yv[1024:]))
    assert cb.report.codes == [], str(cb.report)
    assert "healthy" in str(cb.report)


@requires_tensorflow
def test_nan_run_stops_names_layer_and_restores_finite_weights(tmp_path):
    x, y = digits(256)
    x[150, :] = 3.4e38  # finite, but overflows in the first Dense
    model = compile_(mlp(), keras.optimizers.Adam(1e-3))
    model.build((None, 64))
    before = [w.copy() for w in model.get_weights()]
    cb = CurveDiagnostics(log_dir=str(tmp_path / "run"))
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                        callbacks=[cb])
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert cb.report.codes == ["nan"]
    ev = cb.report.findings[0].evidence
    assert ev["step"] == 150 // 32 and ev["batch"] == 150 // 32
    assert ev["where"] == "output" and ev["layer"] == "hidden"
    assert "hidden" in str(cb.report)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)  # restored from the epoch start
    assert sorted(os.listdir(tmp_path / "run")) == [
        "curves.png", "epochs.csv", "report.json", "steps.csv"]


def test_locate_non_finite_output_and_gradient():
    x, y = digits(64)
    model = compile_(mlp(), keras.optimizers.SGD(0.1))
    weights = model.get_weights()
    weights[2] = weights[2].copy()
    weights[2][0, 0] = np.inf  # logits kernel
    found = locate_non_finite(model, (x, y), weights=weights)
    assert found["where"] == "output" and found["layer"] == "logits"
    assert np.all(np.isfinite(model.get_weights()[2]))  # restored

    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, kernel_initializer="zeros", name="d1")(inputs)
    h = keras.layers.Lambda(keras.ops.sqrt, name="root")(h)  # sqrt(0): d/dx = inf
    out = keras.layers.Dense(2, name="d2")(h)
    model = compile_(keras.Model(inputs, out), keras.optimizers.SGD(0.1))
    found = locate_non_finite(model, (np.ones((5, 4), "float32"), np.zeros(5, "int32")))
    if keras.backend.backend() in ("tensorflow", "jax"):
        assert found["where"] == "gradient" and found["layer"] == "d1"


def test_statistics_match_numpy_at_initialization():
    x, y = digits(256)
    bias = np.zeros(32, "float32")
    bias[:20] = -50.0  # 20 of 32 hidden units can never fire
    model = compile_(mlp(32, keras.initializers.Constant(bias)), keras.optimizers.Adam(1e-3))
    model.build((None, 64))
    w1, b1, w2, b2 = [w.astype("float64") for w in model.get_weights()]
    xp, yp = x[:64], y[:64]
    cb = CurveDiagnostics(statistics_every=4, statistics_data=(xp, yp))
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    stats = cb.report.statistics
    assert stats["layers"] == ["hidden", "logits"] and stats["relu"] == [True, False]
    assert [r["step"] for r in stats["records"]] == [0, 4, 8, 12]
    first = stats["records"][0]
    h = np.maximum(xp @ w1 + b1, 0.0)
    logits = h @ w2 + b2
    np.testing.assert_allclose(first["activation_std"], [h.std(), logits.std()], rtol=1e-4)
    assert first["dead_fraction"][0] == pytest.approx(1.0 - (h > 0).any(axis=0).mean())
    if keras.backend.backend() == "tensorflow":  # gradients w.r.t. layer outputs
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d_logits = (p - np.eye(10)[yp]) / len(yp)
        d_h = d_logits @ w2.T
        np.testing.assert_allclose(
            first["gradient_rms"],
            [np.sqrt(np.mean(d_h**2)), np.sqrt(np.mean(d_logits**2))], rtol=1e-3)
    ratios = stats["records"][1]["update_ratio"]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
    assert "dead_relu" in cb.report.codes, str(cb.report)
    dead = [f for f in cb.report.findings if f.code == "dead_relu"][0]
    assert dead.evidence["layers"]["hidden"] >= 20 / 32, str(cb.report)


@pytest.mark.slow
def test_files_rediagnose_and_cli(tmp_path, capsys):
    from kerastoolkit import cli

    x, y = digits(512)
    model = compile_(mlp(), keras.optimizers.SGD(1e-6))
    cb = CurveDiagnostics(log_dir=str(tmp_path))
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb],
              validation_split=0.25)
    again = diagnose(str(tmp_path / "epochs.csv"), steps=str(tmp_path / "steps.csv"))
    assert again.codes == cb.report.codes == ["not_training"]
    assert again.steps_per_epoch == 12
    with open(tmp_path / "report.json") as handle:
        assert [f["code"] for f in json.load(handle)["findings"]] == ["not_training"]
    assert cli.main(["diagnose", str(tmp_path / "epochs.csv"), "--steps",
                     str(tmp_path / "steps.csv"), "--json"]) == 0
    assert [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["not_training"]


@requires_tensorflow
@pytest.mark.slow
def test_stop_on_diverging_and_mirrored_strategy(mirrored_strategy):
    x, y = digits(512)

    class SignFlippedSGD(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            super().update_step(-gradient, variable, learning_rate)

    with mirrored_strategy.scope():
        model = compile_(mlp(), SignFlippedSGD(0.02))
    cb = CurveDiagnostics(stop_on=("nan", "diverging"))
    history = model.fit(x, y, batch_size=32, epochs=12, shuffle=False, verbose=0,
                        callbacks=[cb])
    assert len(history.history["loss"]) < 12
    assert cb.report.codes[0] in ("diverging", "nan")
    assert len(cb.report.steps) == 16 * len(history.history["loss"])


def test_config_and_argument_validation():
    cb = CurveDiagnostics(log_dir="runs/x", stop_on=("nan", "diverging"), statistics_every=3,
                          statistics_data=(np.ones((2, 3)), np.zeros(2)),
                          thresholds={"not_training_drop": 0.1}, verbose=1)
    assert_config_roundtrip(cb)
    with pytest.raises(ValueError, match="Received: stop_on=\\('overfitting',\\)"):
        CurveDiagnostics(stop_on=("overfitting",))
    with pytest.raises(ValueError, match="Received: statistics_data=None"):
        CurveDiagnostics(statistics_every=5)
    with pytest.raises(ValueError, match="Received: statistics_every=0"):
        CurveDiagnostics(statistics_every=0, statistics_data=(1, 1))
    with pytest.raises(TypeError, match="Received: log_dir=3"):
        CurveDiagnostics(log_dir=3)
    with pytest.raises(ValueError, match="Unknown thresholds"):
        CurveDiagnostics(thresholds={"x": 1})


@pytest.mark.slow
def test_tiny_training_set_large_model_is_overfitting_definite():
    x, y = digits(1797)
    model = compile_(keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10),
    ]), keras.optimizers.Adam(3e-3))
    cb = CurveDiagnostics()
    history = model.fit(**shuffled(x[:60], y[:60], batch_size=20), epochs=30, verbose=0,
                        callbacks=[cb], validation_data=(x[1400:], y[1400:]))
    assert cb.report.codes == ["overfitting_definite"], str(cb.report)
    val = np.asarray(history.history["val_loss"])
    assert cb.report.findings[0].evidence["best_epoch"] == int(np.argmin(val))


@pytest.mark.slow
@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_that_restores_the_best_weights_makes_overfitting_info(restore):
    # The overfitting run above, stopped by Keras's EarlyStopping: with
    # restore_best_weights the model kept is the best epoch's (its validation
    # loss is the minimum of the log), so the finding is about the curve only.
    x, y = digits(1797)
    keras.utils.set_random_seed(0)
    model = compile_(keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(10),
    ]), keras.optimizers.Adam(3e-3))
    stop = keras.callbacks.EarlyStopping(patience=6, restore_best_weights=restore)
    cb = CurveDiagnostics(early_stopping=stop)
    history = model.fit(**shuffled(x[:60], y[:60], batch_size=20), epochs=30, verbose=0,
                        callbacks=[cb, stop], validation_data=(x[1400:], y[1400:]))
    val = np.asarray(history.history["val_loss"])
    assert len(val) < 30 and cb.report.codes == ["overfitting_definite"], str(cb.report)
    finding = cb.report.findings[0]
    kept_val_loss = model.evaluate(x[1400:], y[1400:], verbose=0)
    if restore:
        np.testing.assert_allclose(kept_val_loss, val.min(), rtol=1e-5)
        assert finding.severity == "info" and finding.evidence["restored_epoch"] == int(np.argmin(val))
        assert "model kept is the one from before the rise" in finding.message
    else:  # the last epoch's weights, past the rise: still a warning
        np.testing.assert_allclose(kept_val_loss, val[-1], rtol=1e-5)
        assert finding.severity == "warning" and "restored_epoch" not in finding.evidence
    with pytest.raises(TypeError, match="early_stopping=.*ModelCheckpoint"):
        CurveDiagnostics(early_stopping=keras.callbacks.ModelCheckpoint("m.keras"))


def test_restored_epoch_is_checked_against_the_log():
    logs = {"loss": [1.0, 0.5, 0.3, 0.2], "val_loss": [1.0, 0.6, 0.7, 0.8]}
    for bad in (4, -1, 1.0, True):
        with pytest.raises(ValueError, match=f"restored_epoch={bad!r}"):
            diagnose(logs, restored_epoch=bad)
    with pytest.raises(ValueError, match="needs the per-epoch logs with `val_loss`"):
        diagnose({"loss": [1.0, 0.5, 0.3, 0.2]}, restored_epoch=1)


@requires_tensorflow
def test_nan_under_xla_still_found_without_batch_capture():
    x, y = digits(128)
    x[70, :] = 3.4e38
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = CurveDiagnostics()
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.report.codes == ["nan"]
    ev = cb.report.findings[0].evidence
    assert ev["step"] == 70 // 32 and "not kept" in cb.report.findings[0].message
    assert "train_step" not in vars(model)  # nothing left behind
