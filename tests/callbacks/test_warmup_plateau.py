"""Warmup and PlateauDecay: the rate applied at every step against the formulas."""

import math
import warnings

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import PlateauDecay, Warmup
from tests.callbacks._util import AppliedLR, InjectMetric, probe_data, probe_model
from tests.harness import assert_config_roundtrip

SPE = 4  # steps per epoch


def np_cosine(eta0, decay_steps, alpha, t):
    t = min(t, decay_steps)
    return eta0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / decay_steps)) + alpha)


def np_warmup(base, w, start, t):
    """Goyal et al.: linear from `start` to base(0) over w steps, then base(t - w)."""
    if t < w:
        return start + (base(0) - start) * t / w
    return base(t - w)


def np_plateau(values, factor, patience, cooldown, min_delta, mode):
    """Keras ReduceLROnPlateau's counting rules; returns the reduction epochs."""
    best, wait, cool, out = None, 0, 0, []
    for epoch, v in enumerate(values):
        if cool > 0:
            cool -= 1
            wait = 0
        better = best is None or (v < best - min_delta if mode == "min" else v > best + min_delta)
        if better:
            best, wait = v, 0
        elif cool == 0:
            wait += 1
            if wait >= patience:
                out.append(epoch)
                cool, wait = cooldown, 0
    return out


@pytest.mark.parametrize("kind", ["float", "keras_cosine"])
def test_warmup_applied_rate(kind):
    eta0, w, start = 0.08, 6, 0.01
    if kind == "float":
        lr, base = eta0, (lambda t: eta0)
    else:
        lr = keras.optimizers.schedules.CosineDecay(eta0, decay_steps=10, alpha=0.1)
        base = lambda t: np_cosine(eta0, 10, 0.1, t)
    model = probe_model(keras.optimizers.SGD(lr))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    hist = model.fit(x, y, batch_size=bs, epochs=5, shuffle=False, verbose=0,
                     callbacks=[Warmup(warmup_steps=w, start=start), rec])
    expected = [np_warmup(base, w, start, t) for t in range(5 * SPE)]
    np.testing.assert_allclose(rec.reported, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rec.applied, expected, rtol=2e-4, atol=1e-6)
    # History gets the rate at the end of each epoch (the next step's value).
    np.testing.assert_allclose(
        hist.history["learning_rate"],
        [np_warmup(base, w, start, (e + 1) * SPE) for e in range(5)], rtol=1e-5)


def test_warmup_epochs_counts_fit_steps():
    model = probe_model(keras.optimizers.SGD(0.05))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=3, verbose=0,
              callbacks=[Warmup(warmup_epochs=2), rec])
    expected = [np_warmup(lambda t: 0.05, 2 * SPE, 0.0, t) for t in range(3 * SPE)]
    np.testing.assert_allclose(rec.applied, expected, rtol=2e-4, atol=1e-6)
    # A second fit keeps one warmup (no double wrapping).
    rec2 = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=1, verbose=0, callbacks=[rec2])
    np.testing.assert_allclose(rec2.applied, [0.05] * SPE, rtol=2e-4)


@pytest.mark.parametrize("kind", ["float", "keras_cosine", "toolkit_warmup"])
def test_plateau_trace_and_applied_rate(kind):
    values = [1.0, 0.8, 0.8, 0.81, 0.79, 0.9, 0.95, 0.5, 0.6, 0.6, 0.6, 0.6]
    factor, patience, cooldown, min_delta = 0.5, 2, 1, 0.005
    eta0 = 0.04
    if kind == "float":
        lr, base = eta0, (lambda t: eta0)
    elif kind == "keras_cosine":
        lr = keras.optimizers.schedules.CosineDecay(eta0, decay_steps=30, alpha=0.2)
        base = lambda t: np_cosine(eta0, 30, 0.2, t)
    else:
        lr = kt.schedules.warmup.Warmup(eta0, warmup_steps=5, start=0.0)
        base = lambda t: np_warmup(lambda s: eta0, 5, 0.0, t)
    expected_red = np_plateau(values, factor, patience, cooldown, min_delta, "min")
    assert 2 <= len(expected_red) < len(values)  # non-degenerate trace
    model = probe_model(keras.optimizers.SGD(lr))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    plateau = PlateauDecay(monitor="score", factor=factor, patience=patience,
                           cooldown=cooldown, min_delta=min_delta)
    hist = model.fit(x, y, batch_size=bs, epochs=len(values), shuffle=False, verbose=0,
                     callbacks=[InjectMetric("score", values), plateau, rec])
    assert plateau.reductions == expected_red
    mult = np.ones(len(values))
    for e in expected_red:
        mult[e + 1:] *= factor
    steps = np.arange(len(values) * SPE)
    expected = np.array([base(t) for t in steps]) * mult[steps // SPE]
    np.testing.assert_allclose(rec.applied, expected, rtol=3e-4, atol=1e-6)
    np.testing.assert_allclose(
        hist.history["learning_rate"],
        [base((e + 1) * SPE) * mult[e] for e in range(len(values))], rtol=1e-5)
    assert plateau.multiplier == pytest.approx(factor ** len(expected_red))


def test_plateau_max_mode_min_lr_and_warning():
    values = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(SPE)
    plateau = PlateauDecay(monitor="val_accuracy", factor=0.2, patience=1, min_lr=0.01)
    rec = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=len(values), verbose=0,
              callbacks=[InjectMetric("val_accuracy", values), plateau, rec])
    # "auto" maximises accuracy; reductions 0.1 -> 0.02 -> 0.01 (floor) -> none.
    assert plateau.reductions == np_plateau(values, 0.2, 1, 0, 1e-4, "max")[:2]
    np.testing.assert_allclose(rec.applied[-SPE:], [0.01] * SPE, rtol=3e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=bs, epochs=3, verbose=0,
                  callbacks=[PlateauDecay(monitor="val_nothing")])
    msgs = [str(c.message) for c in caught if "val_nothing" in str(c.message)]
    assert len(msgs) == 1 and "not in the logs" in msgs[0]


def test_warmup_then_plateau_with_early_stopping():
    """Warmup + PlateauDecay + Keras EarlyStopping on one cosine schedule."""
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    eta0, w = 0.05, 6
    cos = keras.optimizers.schedules.CosineDecay(eta0, decay_steps=40)
    model = probe_model(keras.optimizers.SGD(cos))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    plateau = PlateauDecay(monitor="score", factor=0.5, patience=1)
    stop = keras.callbacks.EarlyStopping(monitor="score", patience=3, mode="min")
    hist = model.fit(x, y, batch_size=bs, epochs=len(values), verbose=0,
                     callbacks=[InjectMetric("score", values), Warmup(warmup_steps=w),
                                plateau, stop, rec])
    epochs_run = len(hist.history["loss"])
    assert epochs_run == 5  # EarlyStopping: best at epoch 1, 3 more epochs
    assert plateau.reductions == [2, 3, 4]
    mult = np.array([1, 1, 1, 0.5, 0.25])
    steps = np.arange(epochs_run * SPE)
    base = [np_warmup(lambda t: np_cosine(eta0, 40, 0.0, t), w, 0.0, t) for t in steps]
    np.testing.assert_allclose(rec.applied, np.array(base) * mult[steps // SPE],
                               rtol=3e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"factor": 1.0}, "factor=1.0"),
        ({"factor": 1.5}, "factor=1.5"),
        ({"patience": -1}, "patience=-1"),
        ({"cooldown": -2}, "cooldown=-2"),
        ({"mode": "bigger"}, "mode='bigger'"),
        ({"min_lr": -1.0}, "min_lr=-1.0"),
    ],
)
def test_plateau_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PlateauDecay(**kwargs)


def test_warmup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="warmup_steps=None, warmup_epochs=None"):
        Warmup()
    with pytest.raises(ValueError, match="warmup_steps=3, warmup_epochs=1"):
        Warmup(warmup_steps=3, warmup_epochs=1)
    with pytest.raises(ValueError, match="warmup_steps=0"):
        Warmup(warmup_steps=0)
    with pytest.raises(TypeError, match="warmup_epochs=1.5"):
        Warmup(warmup_epochs=1.5)


def test_configs_roundtrip():
    assert_config_roundtrip(Warmup(warmup_epochs=3, start=0.001))
    assert_config_roundtrip(PlateauDecay(monitor="val_accuracy", factor=0.3, patience=2,
                                         cooldown=1, min_lr=1e-5, mode="max",
                                         restore_best_weights=True, backup_dir="/tmp/b"))


def test_plateau_on_snapshot_schedule_logs_to_csv(tmp_path):
    """PlateauDecay listed before SnapshotEnsemble still scales the cyclic rate."""
    import csv

    from kerastoolkit.callbacks import SnapshotEnsemble

    values = [1.0, 1.0, 0.5, 0.5]
    model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(SPE)
    rec = AppliedLR()
    plateau = PlateauDecay(monitor="score", factor=0.5, patience=1)
    snap = SnapshotEnsemble(cycles=2, total_epochs=4, directory=tmp_path / "s")
    model.fit(x, y, batch_size=bs, epochs=4, shuffle=False, verbose=0,
              callbacks=[InjectMetric("score", values), plateau, snap, rec,
                         keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))])
    assert plateau.reductions == np_plateau(values, 0.5, 1, 0, 1e-4, "min") == [1, 3]
    length = 2 * SPE
    cyc = [0.05 * (math.cos(math.pi * (t % length) / length) + 1) for t in range(4 * SPE + 1)]
    mult = np.array([1, 1, 0.5, 0.5])
    steps = np.arange(4 * SPE)
    np.testing.assert_allclose(rec.applied, np.array(cyc[:-1]) * mult[steps // SPE],
                               rtol=3e-4, atol=1e-6)
    with open(tmp_path / "log.csv") as f:
        logged = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    np.testing.assert_allclose(logged, [cyc[(e + 1) * SPE] * mult[e] for e in range(4)],
                               rtol=1e-5, atol=1e-7)


def test_plateau_restores_best_weights_when_reducing():
    values = [1.0, 0.5, 0.9, 0.9, 0.9]
    model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(SPE)
    ends = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: ends.append(model.get_weights()[0].copy()))
    plateau = PlateauDecay(monitor="score", factor=0.5, patience=2, restore_best_weights=True)
    model.fit(x, y, batch_size=bs, epochs=4, shuffle=False, verbose=0,
              callbacks=[keep, InjectMetric("score", values), plateau])
    assert plateau.reductions == np_plateau(values[:4], 0.5, 2, 0, 1e-4, "min") == [3]
    # Reduced at the end of epoch 3: the weights are those of the best epoch (1).
    np.testing.assert_array_equal(model.get_weights()[0], ends[1])
    assert not np.array_equal(ends[3], ends[1])
