"""An interrupted `fit` leaves nothing behind (issue 24).

Every resumable callback together (`Warmup`, `PlateauDecay`, `MomentumSchedule`,
`SnapshotEnsemble`, `SWA`, `CurveDiagnostics`, with `BackupAndRestore`; see
`_interrupted_run.py`) is interrupted at several points, and the resumed run
must end as the uninterrupted one: weights, learning rate and momentum,
each callback's state, the snapshots and the diagnosis.

- In this process, by an exception (Ctrl-C in a notebook, a dead worker's
  error), then `fit` again on the same model with new callbacks (the cell run
  again): mid-epoch, inside `on_epoch_end` (after the callbacks saved their
  state, before the backup: the backup lags one epoch), and after the last
  epoch (the backup is complete but never removed: the rerun runs no epoch).
- In a killed process (SIGKILL mid-epoch), resumed here from the backup with
  a new model and new callbacks.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.callbacks import _interrupted_run as run
from tests.harness import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Interrupt(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` at one point of the run."""

    def __init__(self, point):
        super().__init__()
        self.point, self.epoch = point, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.point == "mid_epoch" and self.epoch == 2 and batch == 1:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        if self.point == "on_epoch_end" and epoch == 3:
            raise KeyboardInterrupt

    def on_train_end(self, logs=None):
        if self.point == "after_last_epoch":
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("uninterrupted"))
    model, callbacks = run.make_model(), run.make_callbacks(root)
    history = run.fit(model, callbacks)
    return run.outcome(model, callbacks, history)


def assert_same_end(resumed, full, first_epoch):
    assert resumed["iterations"] == full["iterations"] == run.EPOCHS * run.ROWS // run.BATCH
    for a, b in zip(resumed["weights"], full["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert resumed["learning_rate"] == pytest.approx(full["learning_rate"], rel=1e-6)
    assert resumed["momentum"] == pytest.approx(full["momentum"], rel=1e-6)
    np.testing.assert_allclose(resumed["rate_log"], full["rate_log"][first_epoch:], rtol=1e-6)
    assert resumed["plateau"][0] == full["plateau"][0] == [2, 5]  # reductions happened
    assert resumed["plateau"][1:] == pytest.approx(full["plateau"][1:], rel=1e-6)
    assert resumed["swa_count"] == full["swa_count"] == run.EPOCHS - 3
    assert resumed["snapshots"] == full["snapshots"] == [
        "snapshot_01.keras", "snapshot_02.keras", "snapshot_03.keras"]
    np.testing.assert_allclose(resumed["ensemble"], full["ensemble"], atol=1e-6)
    assert resumed["codes"] == full["codes"]
    assert len(resumed["steps"]) == len(full["steps"]) == run.EPOCHS * run.ROWS // run.BATCH
    np.testing.assert_allclose(resumed["steps"], full["steps"], rtol=1e-4)
    np.testing.assert_allclose(resumed["epoch_losses"], full["epoch_losses"], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("point, first_epoch", [
    ("mid_epoch", 2),  # resumed from the backup after epoch 1
    ("on_epoch_end", 3),  # the callbacks saved epoch 3's state, the backup had not
    ("after_last_epoch", run.EPOCHS),  # no epoch left
])
def test_fit_again_after_an_exception_ends_as_the_uninterrupted_run(
        tmp_path, uninterrupted, point, first_epoch):
    model = run.make_model()
    interrupted = run.make_callbacks(str(tmp_path))
    interrupt = Interrupt(point)
    with pytest.raises(KeyboardInterrupt):
        if point == "after_last_epoch":  # before every callback's on_train_end
            interrupted = dict(first=interrupt, **interrupted)
            run.fit(model, interrupted)
        else:
            run.fit(model, interrupted, extra=[interrupt])
    callbacks = run.make_callbacks(str(tmp_path))  # the cell run again, same model
    history = run.fit(model, callbacks)
    assert_same_end(run.outcome(model, callbacks, history), uninterrupted, first_epoch)


@pytest.mark.slow
def test_a_killed_process_resumed_from_the_backup_ends_as_the_uninterrupted_run(
        tmp_path, uninterrupted):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.callbacks._interrupted_run", str(tmp_path), "3", "1"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL, mid-epoch 3
    assert not (tmp_path / "not_killed.npy").exists()
    model, callbacks = run.make_model(), run.make_callbacks(str(tmp_path))
    history = run.fit(model, callbacks)
    assert_same_end(run.outcome(model, callbacks, history), uninterrupted, 3)


# --- each corner on its own, with the probe model (w·x, x = 1: the applied
# rate is read back from the weights) or a tiny MLP ----------------------------

import math  # noqa: E402

import kerastoolkit as kt  # noqa: E402
from tests.callbacks._util import (AppliedLR, InjectMetric, KillAt, digits, probe_data,  # noqa: E402
                                   probe_model)
from tests.callbacks.test_warmup_plateau import np_plateau  # noqa: E402


def np_warmup(eta, warmup_steps, t):
    """Goyal et al.: the rate rises linearly from 0 to η(0), then η(t − W)."""
    return eta(0) * t / warmup_steps if t < warmup_steps else eta(t - warmup_steps)


class StopAt(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.stop, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.stop:
            raise KeyboardInterrupt


@pytest.mark.parametrize("rate", ["float", "schedule"])
def test_fit_again_after_ctrl_c_runs_only_its_own_rate_callbacks(rate):
    """The stopped fit's Warmup and PlateauDecay are not left on the rate."""
    if rate == "float":
        model, eta = probe_model(keras.optimizers.SGD(0.1)), (lambda t: 0.1)
    else:
        cosine = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=20)
        model = probe_model(keras.optimizers.SGD(cosine))
        eta = lambda t: 0.05 * (1 + math.cos(math.pi * min(t, 20) / 20))  # noqa: E731
    x, y, bs = probe_data(4)
    fit = dict(batch_size=bs, shuffle=False, verbose=0)
    plateau = dict(monitor="score", factor=0.5, patience=0)
    with pytest.raises(KeyboardInterrupt):  # after 6 steps; one reduction after epoch 0
        model.fit(x, y, epochs=3, callbacks=[
            InjectMetric("score", [2.0, 1.0, 1.0]), kt.callbacks.Warmup(warmup_steps=8),
            kt.callbacks.PlateauDecay(**plateau), InjectMetric("score", [1.0]), StopAt(1, 1)], **fit)
    probe = AppliedLR()
    model.fit(x, y, epochs=2, callbacks=[
        InjectMetric("score", [1.0, 2.0]), kt.callbacks.Warmup(warmup_steps=8),
        kt.callbacks.PlateauDecay(**plateau), probe], **fit)
    # The optimizer's step goes on from 6: the warmup continues there, and
    # the new PlateauDecay starts at 1 (its reduction after epoch 1 is after
    # the last step).
    expected = [np_warmup(eta, 8, t) for t in range(6, 14)]
    np.testing.assert_allclose(probe.applied, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rate", ["float", "schedule"])
def test_a_fit_without_rate_callbacks_after_ctrl_c_trains_at_the_compiled_rate(rate):
    lr = 0.1 if rate == "float" else keras.optimizers.schedules.PolynomialDecay(0.1, 100, 0.1)
    model = probe_model(keras.optimizers.SGD(lr))
    x, y, bs = probe_data(4)
    with pytest.raises(KeyboardInterrupt):  # mid-warmup, after 3 steps
        model.fit(x, y, batch_size=bs, epochs=2, verbose=0,
                  callbacks=[kt.callbacks.Warmup(warmup_steps=8), StopAt(0, 2)])
    probe = AppliedLR()
    model.fit(x, y, batch_size=bs, epochs=1, verbose=0,
              callbacks=[kt.callbacks.CurveDiagnostics(), probe])
    np.testing.assert_allclose(probe.applied, [0.1] * 4, rtol=1e-5)


def test_curve_diagnostics_after_an_interrupted_fit_records_every_step_exactly():
    (x, y), _ = digits()
    x, y = x[:128].reshape(128, -1), y[:128]
    model = run.make_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0,
                  callbacks=[kt.callbacks.CurveDiagnostics(), StopAt(1, 1)])
    diagnostics = kt.callbacks.CurveDiagnostics()
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[diagnostics])
    labels = diagnostics.step_labels()  # recorded in the train step, not estimated
    assert labels is not None and labels["size"].tolist() == [32.0] * 12
    assert len(diagnostics.step_losses()[0]) == 12
    assert not any("running mean" in note for note in diagnostics.report.notes)


@pytest.mark.parametrize("second", ["same_callback", "new_callback_with_backup_dir"])
def test_swa_over_two_fits_ends_as_one_fit(tmp_path, second):
    """fit(epochs=2) then fit(epochs=4, initial_epoch=2): trained on from the
    SGD weights (not the average written after the first fit), averaged over
    epochs 0..3 as one fit(epochs=4)."""
    (x, y), _ = digits()
    x, y = x[:128].reshape(128, -1), y[:128]
    fit = dict(batch_size=32, shuffle=False, verbose=0)
    ends = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(
        [np.array(w, "float64") for w in model.get_weights()]))
    model = run.make_model()
    model.fit(x, y, epochs=4, callbacks=[keep, kt.callbacks.SWA(start_epoch=0)], **fit)
    one_fit = model.get_weights()
    for i, w in enumerate(one_fit):  # Izmailov et al.: the mean of the epochs' weights
        np.testing.assert_allclose(w, np.mean([e[i] for e in ends], axis=0), rtol=1e-5, atol=1e-6)

    model = run.make_model()
    swa = kt.callbacks.SWA(start_epoch=0, backup_dir=str(tmp_path))
    ends.clear()
    model.fit(x, y, epochs=2, callbacks=[keep, swa], **fit)
    average = np.mean([ends[0][0], ends[1][0]], axis=0)  # the first fit's average is in
    np.testing.assert_allclose(model.get_weights()[0], average, rtol=1e-5, atol=1e-6)
    assert not np.allclose(average, ends[1][0], atol=1e-4)
    if second == "new_callback_with_backup_dir":
        swa = kt.callbacks.SWA(start_epoch=0, backup_dir=str(tmp_path))
    model.fit(x, y, epochs=4, initial_epoch=2, callbacks=[swa], **fit)
    assert swa.count == 4
    for a, b in zip(model.get_weights(), one_fit):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_two_plateau_decays_on_different_metrics_share_a_backup_dir(tmp_path):
    x, y, bs = probe_data(2)
    scores = {"a": [3.0, 2.0, 2.0, 2.0, 2.0], "b": [3.0, 3.0, 3.0, 1.0, 1.0]}

    def callbacks(backup):
        plateaus = [kt.callbacks.PlateauDecay(monitor=m, factor=0.5, patience=1,
                                              backup_dir=backup) for m in scores]
        return plateaus, [InjectMetric(m, v) for m, v in scores.items()] + plateaus + [
            keras.callbacks.BackupAndRestore(backup)]

    fit = dict(batch_size=bs, epochs=5, shuffle=False, verbose=0)
    full, cbs = callbacks(str(tmp_path / "full"))
    probe_model(keras.optimizers.SGD(0.1)).fit(x, y, callbacks=cbs, **fit)
    with pytest.raises(RuntimeError, match="killed"):
        _, cbs = callbacks(str(tmp_path / "resumed"))
        probe_model(keras.optimizers.SGD(0.1)).fit(x, y, callbacks=cbs + [KillAt(3)], **fit)
    resumed, cbs = callbacks(str(tmp_path / "resumed"))
    probe_model(keras.optimizers.SGD(0.1)).fit(x, y, callbacks=cbs, **fit)
    # Each metric's own counting rules (Keras's ReduceLROnPlateau, patience 1).
    assert [p.reductions for p in full] == [
        np_plateau(v, 0.5, 1, 0, 1e-4, "min") for v in scores.values()] == [[2, 3, 4], [1, 2, 4]]
    for r, f in zip(resumed, full):
        assert (r.reductions, r.multiplier, r.best, r.wait) == (f.reductions, f.multiplier,
                                                                 f.best, f.wait)


@pytest.mark.parametrize("make", [
    lambda d: [kt.callbacks.PlateauDecay(monitor="loss", backup_dir=d),
               kt.callbacks.PlateauDecay(monitor="loss", factor=0.5, backup_dir=d)],
    lambda d: [kt.callbacks.SWA(start_epoch=0, backup_dir=d),
               kt.callbacks.SWA(start_epoch=1, backup_dir=d)],
    lambda d: [kt.callbacks.CurveDiagnostics(backup_dir=d),
               kt.callbacks.CurveDiagnostics(backup_dir=d)],
], ids=["PlateauDecay", "SWA", "CurveDiagnostics"])
def test_two_callbacks_of_one_kind_in_one_state_file_are_refused(tmp_path, make):
    x, y, bs = probe_data(1)
    callbacks = make(str(tmp_path))
    with pytest.raises(ValueError, match=rf"Two `{type(callbacks[0]).__name__}` callbacks"):
        probe_model(keras.optimizers.SGD(0.1)).fit(x, y, batch_size=bs, epochs=1, verbose=0,
                                                   callbacks=callbacks)


def test_snapshot_cycles_stay_on_epoch_boundaries_when_resumed_with_another_batch_size(tmp_path):
    """Killed after 3 epochs of 4 steps, resumed with 2 steps per epoch: each
    cycle (2 epochs) still ends at an epoch's end, at its lowest rate."""
    x, y, _ = probe_data(4, batch_size=8)
    backup, directory = str(tmp_path / "backup"), str(tmp_path / "snaps")

    def callbacks():
        return [kt.callbacks.SnapshotEnsemble(cycles=2, total_epochs=4, directory=directory),
                keras.callbacks.BackupAndRestore(backup)]

    with pytest.raises(RuntimeError, match="killed"):
        probe_model(keras.optimizers.SGD(0.1)).fit(x, y, batch_size=8, epochs=4, shuffle=False,
                                                   verbose=0, callbacks=callbacks() + [KillAt(3)])
    probe = AppliedLR()
    probe_model(keras.optimizers.SGD(0.1)).fit(x, y, batch_size=16, epochs=4, shuffle=False,
                                               verbose=0, callbacks=callbacks() + [probe])
    # Huang et al., Eq. (2), with the position counted in this run's steps:
    # epoch 3 is steps 2 and 3 of the second cycle of 2 epochs x 2 steps.
    length = 2 * 2
    expected = [0.05 * (math.cos(math.pi * (t % length) / length) + 1) for t in (6, 7)]
    np.testing.assert_allclose(probe.applied, expected, rtol=1e-5, atol=1e-7)
    assert sorted(os.listdir(directory)) == ["snapshot_01.keras", "snapshot_02.keras"]
