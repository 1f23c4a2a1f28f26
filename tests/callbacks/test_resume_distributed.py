"""BackupAndRestore resumes every callback's state; MirroredStrategy; .keras round trip."""

import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import (SWA, MomentumSchedule, PlateauDecay, SnapshotEnsemble,
                                    Warmup)
from tests.callbacks._util import AppliedLR, InjectMetric, KillAt, digits, probe_data, probe_model
from tests.conftest import requires_tensorflow
from tests.harness import assert_saved_model_roundtrip, fresh_process_predict

VALUES = [2.0, 1.5, 1.5, 1.49, 1.2, 1.3, 1.3, 1.3, 1.0]


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.5), "sparse_categorical_crossentropy")
    return model


def train(tmp_path, name, kill_at=None):
    (x, y), _ = digits()
    x, y = x[:512].reshape(512, -1), y[:512]
    backup = str(tmp_path / name)
    results = {}
    for attempt in ([kill_at] if kill_at is not None else []) + [None]:
        model = mlp()  # a new process would rebuild the same model
        plateau = PlateauDecay(monitor="score", factor=0.5, patience=1, backup_dir=backup)
        swa = SWA(start_epoch=3, backup_dir=backup)
        diagnostics = kt.callbacks.CurveDiagnostics(  # statistics every 4 of the 8 steps
            log_dir=str(tmp_path / f"{name}-diagnostics"), statistics_every=4,
            statistics_data=(x[:32], y[:32]), backup_dir=backup)
        beta = kt.schedules.warmup.Warmup(0.9, warmup_steps=20, start=0.5)
        callbacks = [InjectMetric("score", VALUES), Warmup(warmup_steps=10), plateau,
                     MomentumSchedule(beta), swa, diagnostics,
                     keras.callbacks.BackupAndRestore(backup)]
        if attempt is not None:
            callbacks.append(KillAt(attempt))
            with pytest.raises(RuntimeError, match="killed"):
                model.fit(x, y, batch_size=64, epochs=len(VALUES), shuffle=False, verbose=0,
                          callbacks=callbacks)
            continue
        hist = model.fit(x, y, batch_size=64, epochs=len(VALUES), shuffle=False, verbose=0,
                         callbacks=callbacks)
        results = dict(
            weights=model.get_weights(),
            lr=float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            momentum=model.optimizer.momentum,
            plateau=(plateau.reductions, plateau.multiplier, plateau.best, plateau.wait),
            swa=swa.count, lr_log=hist.history["learning_rate"],
            iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            steps=diagnostics.step_losses(), labels=diagnostics.step_labels(),
            epoch_logs=diagnostics._epoch_logs, statistics=diagnostics._statistics["records"],
            codes=diagnostics.report.codes,
            steps_csv=(tmp_path / f"{name}-diagnostics" / "steps.csv").read_text(),
        )
    return results


@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_uninterrupted(tmp_path):
    full = train(tmp_path, "full")
    resumed = train(tmp_path, "resumed", kill_at=5)
    assert resumed["iterations"] == full["iterations"] == len(VALUES) * 8
    assert resumed["plateau"] == full["plateau"]
    assert full["plateau"][0] == [2, 5, 6, 7]  # reductions actually happened
    assert resumed["swa"] == full["swa"] == len(VALUES) - 3
    assert resumed["lr"] == pytest.approx(full["lr"], rel=1e-6)
    assert resumed["momentum"] == pytest.approx(full["momentum"], rel=1e-6)
    assert resumed["lr_log"] == pytest.approx(full["lr_log"][5:], rel=1e-6)
    for a, b in zip(resumed["weights"], full["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # CurveDiagnostics: the history recorded before the kill is kept, so the
    # resumed run's record covers all 9 epochs (72 steps) like the full one.
    steps, epochs, batches = resumed["steps"]
    assert len(steps) == len(VALUES) * 8
    np.testing.assert_array_equal(epochs, full["steps"][1])
    np.testing.assert_array_equal(batches, full["steps"][2])
    np.testing.assert_allclose(steps, full["steps"][0], rtol=1e-4)
    if keras.backend.backend() == "tensorflow":  # recorded in the train step
        np.testing.assert_array_equal(resumed["labels"]["size"], full["labels"]["size"])
    else:  # recovered from the running means
        assert resumed["labels"] is full["labels"] is None
    assert resumed["epoch_logs"].keys() == full["epoch_logs"].keys()
    for key, column in full["epoch_logs"].items():
        np.testing.assert_allclose(resumed["epoch_logs"][key], column, rtol=1e-4, err_msg=key)
    assert len(resumed["steps_csv"].splitlines()) == 1 + len(VALUES) * 8
    assert resumed["codes"] == full["codes"]
    # Statistics at steps 0, 4, ..., 68; the update ratio of step 40 (the
    # first after the restart) uses the kernels kept before step 39.
    assert [r["step"] for r in resumed["statistics"]] == list(range(0, 72, 4))
    def values(record, key):  # None (no ratio yet, a layer without kernel) as NaN
        return np.array([np.nan if v is None else v for v in record[key] or [None]], "float64")

    for r, f in zip(resumed["statistics"], full["statistics"]):
        for key in ("update_ratio", "gradient_rms", "activation_std"):
            np.testing.assert_allclose(values(r, key), values(f, key), rtol=1e-3, err_msg=key)
    assert np.isfinite(values(resumed["statistics"][10], "update_ratio")).any()  # step 40


def test_a_resume_without_saved_state_warns(tmp_path):
    """A `fit` that starts at a later epoch with nothing saved for it says so."""
    (x, y), _ = digits()
    model = mlp()
    callbacks = [kt.callbacks.CurveDiagnostics(backup_dir=str(tmp_path)),
                 PlateauDecay(monitor="loss", backup_dir=str(tmp_path))]
    with pytest.warns(UserWarning, match=r"starts at epoch 1 but `backup_dir`.*holds no state"):
        model.fit(x[:64].reshape(64, -1), y[:64], batch_size=64, epochs=2, initial_epoch=1,
                  verbose=0, callbacks=callbacks)


def test_state_files_survive_a_torn_write_and_a_lagging_backup(tmp_path):
    """Each epoch's state is its own pair of files, written atomically; the
    last two epochs are kept, so a backup one epoch behind still finds its
    state; an unreadable archive is reported and ignored."""
    from kerastoolkit._callback_common import StateFile

    files = StateFile(str(tmp_path), "probe")
    for epoch in (1, 2, 3):
        files.save(epoch, {"epoch": epoch}, [np.full(2, epoch)])
    assert files.saved_epochs() == [2, 3]
    state, arrays = files.load(2)  # the backup lagged one epoch behind
    assert state == {"epoch": 2} and arrays[0].tolist() == [2, 2]
    # Killed while writing epoch 4's arrays: epoch 3's pair is untouched.
    with open(files._path(4, ".npz") + ".tmp", "wb") as f:
        f.write(b"PK\x03\x04 truncated")
    assert files.load(3)[0] == {"epoch": 3} and files.load(4) == (None, None)
    with open(files._path(3, ".npz"), "wb") as f:  # corrupted in place
        f.write(b"not a zip")
    with pytest.warns(UserWarning, match="state saved after epoch 3 .* cannot be read"):
        assert files.load(3) == (None, None)


def test_curve_diagnostics_resumed_after_its_last_epoch_and_after_a_nan(tmp_path):
    """A run resumed with no epoch left reports the saved history (it used to
    crash in `diagnose`); a NaN seen before the restart is reported without
    locating a layer in a batch the restart lost."""
    (x, y), _ = digits()
    x, y = x[:128].reshape(128, -1).astype("float32"), y[:128]
    x[64] = np.nan  # batch 2 of epoch 0 (batches of 32): the loss is NaN from there on
    backup = str(tmp_path / "backup")

    def run(initial_epoch, weights=None):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
        if weights is not None:  # what BackupAndRestore would have restored
            model.set_weights(weights)
        cb = kt.callbacks.CurveDiagnostics(stop_on=(), backup_dir=backup)
        model.fit(x, y, batch_size=32, epochs=3, initial_epoch=initial_epoch, shuffle=False,
                  verbose=0, callbacks=[cb])
        return cb.report, model.get_weights()

    full, weights = run(0)
    assert "nan" in full.codes
    if keras.backend.backend() == "tensorflow":  # the batch is captured and the layer located
        assert "first non-finite" in str(full.to_dict()["findings"]).lower()
    after_the_end, _ = run(3, weights)  # no epoch left: the state saved after epoch 3
    assert after_the_end.to_dict()["epochs"] == full.to_dict()["epochs"]
    assert after_the_end.codes == full.codes
    resumed, _ = run(2, weights)
    assert len(resumed.to_dict()["epochs"]["loss"]) == 3
    assert "lost when the run was restarted" in str(resumed.to_dict()["findings"])


def test_swa_resumed_after_its_last_epoch_still_averages(tmp_path):
    """A run resumed with no epoch left (killed after its last backup) ends
    with the SWA average, as the uninterrupted run does (it used to keep the
    last epoch's weights: SWA's count was 0 in that `fit`)."""
    (x, y), _ = digits()
    x, y = x[:128].reshape(128, -1), y[:128]
    backup = str(tmp_path / "backup")
    model = mlp()
    last = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: last.__dict__.update(weights=model.get_weights()))
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=[SWA(start_epoch=1, backup_dir=backup), last])
    resumed = mlp()
    resumed.set_weights(last.weights)  # what BackupAndRestore restores: the last epoch's
    resumed.fit(x, y, batch_size=32, epochs=3, initial_epoch=3, verbose=0,
                callbacks=[SWA(start_epoch=1, backup_dir=backup)])
    assert not np.allclose(model.get_weights()[0], last.weights[0])  # averaging moved them
    for a, b in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_snapshot_ensemble_resumes(tmp_path):
    (x, y), (xt, _) = digits()
    x, y, xt = x[:256].reshape(256, -1), y[:256], xt[:40].reshape(40, -1)
    outputs = []
    for name, kill in (("full", None), ("resumed", 3)):
        directory = tmp_path / name / "snaps"
        backup = str(tmp_path / name / "backup")
        for attempt in ([kill] if kill is not None else []) + [None]:
            model = mlp()
            snap = SnapshotEnsemble(cycles=3, total_epochs=6, directory=directory)
            callbacks = [snap, keras.callbacks.BackupAndRestore(backup)]
            if attempt is not None:
                with pytest.raises(RuntimeError):
                    model.fit(x, y, batch_size=64, epochs=6, shuffle=False, verbose=0,
                              callbacks=callbacks + [KillAt(attempt)])
                assert sorted(os.listdir(directory)) == ["snapshot_01.keras"]
                continue
            model.fit(x, y, batch_size=64, epochs=6, shuffle=False, verbose=0,
                      callbacks=callbacks)
        assert len(snap.snapshot_paths) == 3 and len(snap.ensemble.members) == 3
        outputs.append((snap.ensemble.predict(xt, verbose=0), model.get_weights()))
    np.testing.assert_allclose(outputs[1][0], outputs[0][0], atol=1e-6)
    for a, b in zip(outputs[1][1], outputs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@requires_tensorflow
def test_callbacks_under_mirrored_strategy(mirrored_strategy, tmp_path):
    """Rates applied per step under 2 replicas: warmup, plateau, momentum."""
    with mirrored_strategy.scope():
        model = probe_model(keras.optimizers.SGD(0.04, momentum=0.5))
    x, y, bs = probe_data(4, batch_size=8)
    values = [1.0, 1.0, 1.0, 0.5]
    rec = AppliedLR()
    plateau = PlateauDecay(monitor="score", factor=0.5, patience=1)
    beta = kt.schedules.warmup.Warmup(0.9, warmup_steps=6, start=0.5)
    seen = []
    keep = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            float(model.layers[0].kernel.numpy()[0, 0])))
    model.fit(x, y, batch_size=bs, epochs=4, shuffle=False, verbose=0,
              callbacks=[InjectMetric("score", values), Warmup(warmup_steps=5), plateau,
                         MomentumSchedule(beta), keep])
    assert plateau.reductions == [1, 2]
    mult = np.array([1, 1, 0.5, 0.25])
    m, w, expected = 0.0, 0.0, []
    for t in range(16):  # heavy ball with the warmed-up, reduced rate and β(t)
        lr = (0.04 * t / 5 if t < 5 else 0.04) * mult[t // 4]
        b = 0.5 + 0.4 * t / 6 if t < 6 else 0.9
        m = b * m - lr
        w += m
        expected.append(w)
    np.testing.assert_allclose(seen, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_model_trained_with_callbacks_saves_and_loads(tmp_path):
    """The optimizer's wrapped schedules serialize; a fresh process reloads the model."""
    (x, y), (xt, _) = digits()
    x, xt = x[:256].reshape(256, -1), xt[:20].reshape(20, -1)
    model = mlp()
    layout = [v.path for v in model.optimizer.variables]
    plateau = PlateauDecay(monitor="loss", patience=0, factor=0.5, min_delta=10.0)
    hist = model.fit(x, y[:256], batch_size=64, epochs=3, verbose=0,
                     callbacks=[Warmup(warmup_steps=4), plateau,
                                MomentumSchedule(kt.schedules.warmup.Warmup(0.9, 4, start=0.5))])
    assert plateau.reductions == [1, 2]
    # The float rate is a float again, at the rate reached; the layout is unchanged.
    assert isinstance(model.optimizer._learning_rate, keras.Variable)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        0.05 * 0.25)
    assert hist.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025])
    assert [v.path for v in model.optimizer.variables][:len(layout)] == layout
    if keras.backend.backend() == "tensorflow":  # the export trap of untracked variables
        assert_saved_model_roundtrip(model, xt, tmp_path)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert float(keras.ops.convert_to_numpy(reloaded.optimizer.learning_rate)) == pytest.approx(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    (fresh,) = fresh_process_predict([path], [xt], tmp_path)
    np.testing.assert_allclose(fresh, keras.ops.convert_to_numpy(model(xt)), atol=1e-6)


@pytest.mark.slow
@requires_tensorflow
def test_snapshot_swa_and_lr_finder_under_mirrored_strategy(mirrored_strategy, tmp_path):
    import math

    from kerastoolkit.callbacks import find_learning_rate

    with mirrored_strategy.scope():
        model = probe_model(keras.optimizers.SGD(0.1))
    x, y, bs = probe_data(4, batch_size=8)
    rec = AppliedLR()
    snap = SnapshotEnsemble(cycles=2, total_epochs=4, directory=tmp_path / "snaps")
    swa = SWA(start_epoch=1)
    ends = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: ends.append(model.get_weights()[0][0, 0]))
    model.fit(x, y, batch_size=bs, epochs=4, shuffle=False, verbose=0,
              callbacks=[snap, swa, rec, keep])
    length = 2 * 4
    expected = [0.05 * (math.cos(math.pi * (t % length) / length) + 1) for t in range(16)]
    np.testing.assert_allclose(rec.applied, expected, rtol=3e-4, atol=1e-6)
    assert len(snap.ensemble.members) == 2
    np.testing.assert_allclose(model.get_weights()[0][0, 0], np.mean(ends[1:]), rtol=1e-5)
    # The range test restores weights and optimizer state exactly under the strategy.
    before = [np.array(w) for w in model.get_weights()]
    before_opt = [np.array(v) for v in model.optimizer.variables]
    finder = find_learning_rate(model, x, y, batch_size=bs, min_lr=1e-3, max_lr=1.0,
                                num_steps=4)
    assert len(finder.losses) == 4
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before_opt, model.optimizer.variables))
