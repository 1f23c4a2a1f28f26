"""`kt.callbacks.SelfHealing`: rollbacks on real runs, against runs that never saw the fault.

The reference of a healed run is a plain Keras run on the same data without
the batches the rollback skipped: the same weights must come out (the
snapshot holds the weights, BatchNorm statistics, the seed generators and the
optimizer state with its step), to float32 rounding.
"""

import json
import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.callbacks import SelfHealing
from kerastoolkit.callbacks import SelfHealingError
from tests.callbacks._util import KillAt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip

BATCH = 32


def digits(n=256):
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data[:n] / 16.0).astype("float32"), data.target[:n].astype("int32")


def mlp(optimizer=None, bn=True, dropout=True, seed=0, **compile_args):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,)), keras.layers.Dense(32, activation="relu")]
    if bn:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(0.2))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", **compile_args)
    return model


def batches(x, y, keep):
    """The examples of the batches `keep` (indices of batches of `BATCH`)."""
    index = np.concatenate([np.arange(b * BATCH, (b + 1) * BATCH) for b in keep])
    return x[index], y[index]


def _value(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable)).item()


def assert_same_weights(a, b, rtol=1e-6, atol=1e-7):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


class Corrupt(keras.callbacks.Callback):
    """Sets the first kernel to NaN before the given (epoch, batch) steps."""

    def __init__(self, steps):
        super().__init__()
        self.steps = set(steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) in self.steps:
            kernel = self.model.layers[0].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


class StateAfterStep(keras.callbacks.Callback):
    """The optimizer and model variables after every step (list it after SelfHealing)."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_batch_end(self, batch, logs=None):
        read = lambda vs: [np.array(keras.ops.convert_to_numpy(v)) for v in vs]  # noqa: E731
        self.states.append({"optimizer": read(self.model.optimizer.variables),
                            "paths": [v.path for v in self.model.optimizer.variables],
                            "model": read(self.model.weights)})


# ------------------------------------------------------------------ a NaN batch


def test_nan_batch_run_equals_run_without_the_skipped_batches(tmp_path):
    """A NaN in batch 3 of every epoch, a snapshot every 2 steps: each epoch
    rolls back to the snapshot after batch 1 and skips batches 2 and 3. The
    run ends with the weights of a plain run on batches 0, 1, 4-7 of each
    epoch (BatchNorm statistics, dropout masks and Adam's moments included).
    CurveDiagnostics, listed first, sees the NaN but leaves it to the healer:
    its report says the run was healed, and its curve leaves the undone steps out."""
    x, y = digits()
    x_nan = x.copy()
    x_nan[3 * BATCH + 5, 7] = np.nan
    model = mlp()
    diagnostics = kt.callbacks.CurveDiagnostics(log_dir=str(tmp_path / "diag"))
    healing = SelfHealing(snapshot_every=2)
    history = model.fit(x_nan, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                        callbacks=[diagnostics, healing])
    seen = [(e["epoch"], e["batch"], e["restored"]["epoch"], e["restored"]["batch"],
             e["seen"]["kind"], e["skipped_batches"]) for e in healing.interventions]
    assert seen == [(0, 3, 0, 1, "non_finite_loss", 2), (1, 3, 1, 1, "non_finite_loss", 2)]
    assert history.history["interventions"] == [1, 1]
    assert np.isfinite(history.history["loss"]).all()

    reference = mlp()
    x_ref, y_ref = batches(x, y, [0, 1, 4, 5, 6, 7])
    reference.fit(x_ref, y_ref, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(model.get_weights(), reference.get_weights())
    assert _value(model.optimizer.iterations) == _value(reference.optimizer.iterations) == 12

    report = diagnostics.report
    assert "healed" in report.codes and "nan" not in report.codes and not report.healthy
    losses, epochs, batch_index = diagnostics.step_losses()
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert [int(b) for b in batch_index[:6]] == [0, 1, 4, 5, 6, 7]
    saved = json.load(open(tmp_path / "diag" / "report.json"))
    assert [i["curve_step"] for i in saved["interventions"]] == [2, 8]
    assert "healed" in [f["code"] for f in saved["findings"]]
    assert os.path.getsize(tmp_path / "diag" / "curves.png") > 0


def test_steps_per_execution_and_xla_skip_whole_calls():
    """With `steps_per_execution=2` (and XLA) the check reads each call's two
    steps: a NaN in batch 5 undoes the call of batches 4 and 5."""
    x, y = digits()
    x_nan = x.copy()
    x_nan[5 * BATCH, 0] = np.inf
    model = mlp(steps_per_execution=2, jit_compile=True)
    healing = SelfHealing(snapshot_every=1)
    model.fit(x_nan, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[healing])
    (entry,) = healing.interventions
    assert (entry["batch"], entry["restored"]["batch"], entry["skipped_batches"]) == (5, 3, 2)
    reference = mlp(steps_per_execution=2, jit_compile=True)
    x_ref, y_ref = batches(x, y, [0, 1, 2, 3, 6, 7])
    reference.fit(x_ref, y_ref, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_same_weights(model.get_weights(), reference.get_weights(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ escalation


def test_rollback_restores_the_snapshot_and_escalates_through_the_rate_program():
    """Faults in three steps in a row (the weights set to NaN before each):
    the first rollback goes to the newest snapshot, the second one snapshot
    further back, the third one further still and halves the rate. After
    each, the optimizer state (SGD momentum slots, iteration count) is the
    snapshot's exactly; the warmup and the momentum schedule continue from
    the restored step, the rate times 0.5 (NumPy: warmup 0.1·t/20, β from
    0.5 to 0.9 over 20 steps)."""
    x, y = digits()
    model = mlp(keras.optimizers.SGD(0.1, momentum=0.5), dropout=False)
    beta = kt.schedules.Warmup(0.9, warmup_steps=20, start=0.5)
    healing = SelfHealing(snapshot_every=2, factor=0.5)
    states = StateAfterStep()
    plateau = kt.callbacks.PlateauDecay(monitor="loss", patience=5)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[Corrupt([(0, 6), (0, 7), (1, 0)]), kt.callbacks.Warmup(warmup_steps=20),
                         kt.callbacks.MomentumSchedule(beta), healing, plateau, states])
    got = [(e["attempt"], e["restored"]["step"], e["restored"]["iteration"]) for e in healing.interventions]
    assert got == [(1, 6, 6), (2, 4, 4), (3, 2, 2)]
    # Each rollback's state is the one after the snapshot's step (states[k - 1]).
    for entry, step_index in zip(healing.interventions, (6, 7, 8)):
        after, snapshot = states.states[step_index], states.states[entry["restored"]["step"] - 1]
        for path, a, b in zip(after["paths"], after["optimizer"], snapshot["optimizer"]):
            if not path.endswith("learning_rate"):
                np.testing.assert_array_equal(a, b, err_msg=path)
        for a, b in zip(after["model"], snapshot["model"]):
            np.testing.assert_array_equal(a, b)
    rates = [e["learning_rate"] for e in healing.interventions]
    assert rates[0]["after"] == pytest.approx(0.1 * 6 / 20)
    assert rates[1]["after"] == pytest.approx(0.1 * 4 / 20)
    assert rates[2]["after"] == pytest.approx(0.5 * 0.1 * 2 / 20)
    assert healing.multiplier == 0.5 and plateau.multiplier == 1.0
    # The run goes on from step 2 with half the warmed-up rate and the schedule's β.
    iterations = _value(model.optimizer.iterations)
    assert iterations == 2 + 7  # the last rollback's snapshot, then batches 1-7 of epoch 1
    assert _value(model.optimizer.learning_rate) == pytest.approx(0.5 * 0.1 * iterations / 20)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_gives_up_with_an_error_and_the_report(tmp_path):
    """A fault in every step from batch 3 on: after `max_attempts` rollbacks
    it raises, the model holds the newest snapshot (finite), and
    CurveDiagnostics listed after it still wrote its report."""
    x, y = digits()
    model = mlp(dropout=False)
    diagnostics = kt.callbacks.CurveDiagnostics(log_dir=str(tmp_path / "diag"))
    healing = SelfHealing(snapshot_every=1, max_attempts=2)
    corrupt = Corrupt([(0, b) for b in range(3, 8)])
    with pytest.raises(SelfHealingError, match="(?s)gave up.*max_attempts=2"):
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[corrupt, healing, diagnostics])
    assert [e["action"] for e in healing.interventions] == ["rolled_back", "rolled_back", "gave_up"]
    assert all(np.isfinite(w).all() for w in model.get_weights())
    saved = json.load(open(tmp_path / "diag" / "report.json"))
    healed = next(f for f in saved["findings"] if f["code"] == "healed")
    assert healed["evidence"]["gave_up"] is True and "gave up" in healed["message"]


# ------------------------------------------------------------------ spikes, noise, precision


def test_extreme_example_is_a_spike_and_small_noisy_batches_are_not():
    """Batch 8 of digits holds an example scaled by 1e4: its loss jumps far
    above the level of the steps before (a spike, rolled back). Batches of 8
    on the rest never trigger anything, from the first step on."""
    x, y = digits(1024)
    x_bad = x.copy()
    x_bad[30 * 8 + 2] *= 1e4
    model = mlp(keras.optimizers.Adam(1e-3), bn=False)
    healing = SelfHealing()
    model.fit(x_bad, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[healing])
    assert [(e["epoch"], e["batch"], e["seen"]["kind"]) for e in healing.interventions] == [
        (0, 30, "spike"), (1, 30, "spike")]
    spike = healing.interventions[0]["seen"]
    assert spike["loss"] > spike["threshold"] > spike["level"]


def test_an_evaluate_between_steps_is_not_a_fault():
    """A callback after it evaluates every other step (Keras resets the loss
    tracker and fills it with the validation loss): each step's loss is read
    from the tracker before and after that step, so nothing is seen."""
    x, y = digits(512)
    model = mlp(bn=False, dropout=False)
    healing = SelfHealing(min_steps=10)
    probe = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: (
        model.evaluate(x[:64], y[:64], verbose=0) if batch % 2 else None))
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[healing, probe])
    assert healing.interventions == []


def test_loss_scale_overflows_are_not_faults():
    """Under mixed_float16 a loss scale of 2^40 overflows the float16
    gradients: LossScaleOptimizer skips those steps and halves its scale. The
    loss and weights stay finite: no intervention."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = digits()
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3),
                                                        initial_scale=2.0**40)
        model = mlp(optimizer, bn=False, dropout=False)
        healing = SelfHealing()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[healing])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    scale = float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))
    assert scale < 2.0**40 / 8  # at least three overflows were skipped
    assert healing.interventions == []


# ------------------------------------------------------------------ distributed, resumed


@requires_tensorflow
def test_two_replicas_decide_as_one_device(mirrored_strategy):
    """The NaN sits in the second half of a global batch (replica 1's shard):
    the loss read is the sum over both replicas, so the rollback happens at
    that step, the replicas' weights stay identical, and the run ends as the
    same run on one device."""
    x, y = digits()
    x_nan = x.copy()
    x_nan[2 * BATCH + 20, 3] = np.nan
    runs = {}
    for name in ("one", "two"):
        scope = mirrored_strategy.scope() if name == "two" else _null()
        with scope:
            model = mlp(keras.optimizers.SGD(0.05, momentum=0.9), bn=False, dropout=False)
        healing = SelfHealing(snapshot_every=1)
        model.fit(x_nan, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[healing])
        runs[name] = (model, [(e["epoch"], e["batch"], e["restored"]["batch"]) for e in healing.interventions])
    assert runs["one"][1] == runs["two"][1] == [(0, 2, 1), (1, 2, 1)]
    assert_same_weights(runs["two"][0].get_weights(), runs["one"][0].get_weights(), 1e-5, 1e-6)
    for variable in runs["two"][0].trainable_variables:
        first, second = (np.asarray(v) for v in variable.value.values)
        np.testing.assert_array_equal(first, second)


def _null():
    import contextlib

    return contextlib.nullcontext()


def test_backup_and_restore_resumes_multiplier_and_interventions(tmp_path):
    """Killed at the start of epoch 2 after a halving rollback in epoch 0 and
    resumed with `BackupAndRestore`: the rate multiplier and the
    interventions come back, and the run ends as the uninterrupted one."""
    x, y = digits()
    results = {}
    for name, kill in (("full", None), ("killed", 2)):
        backup = str(tmp_path / name)
        for attempt in ([kill] if kill is not None else []) + [None]:
            model = mlp(dropout=False)
            healing = SelfHealing(snapshot_every=2, backup_dir=backup)
            callbacks = [Corrupt([(0, 5), (0, 6), (0, 7)]), healing,
                         keras.callbacks.BackupAndRestore(backup)]
            if attempt is not None:
                with pytest.raises(RuntimeError, match="killed"):
                    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                              callbacks=callbacks + [KillAt(attempt)])
                continue
            model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=callbacks)
        results[name] = (model.get_weights(), healing.multiplier,
                         json.dumps(healing.interventions), _value(model.optimizer.learning_rate))
    full, killed = results["full"], results["killed"]
    assert full[1] == killed[1] == 0.2  # the default factor
    assert killed[2] == full[2] and len(json.loads(full[2])) == 3
    assert killed[3] == pytest.approx(full[3]) and full[3] == pytest.approx(0.2e-2)
    assert_same_weights(killed[0], full[0])


@pytest.mark.slow
def test_keras_checkpoint_mid_training_keeps_the_lowered_rate(tmp_path):
    """A schedule rate lowered by a rollback (x0.2 on a cosine) is saved
    inside the `.keras` checkpoint written at the epoch's end: it loads with
    the same outputs, and a new SelfHealing on the loaded model continues
    with the same multiplier (the rate of the next step is 0.2 x cosine(t)).
    (A lowered `Scaled` rate loading in a fresh process is
    tests/schedules/test_training.py's.)"""
    x, y = digits()
    cosine = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=100)
    model = mlp(keras.optimizers.SGD(cosine, momentum=0.9), dropout=False)
    path = str(tmp_path / "checkpoint.keras")
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[Corrupt([(0, 4), (0, 5), (0, 6)]), SelfHealing(snapshot_every=2),
                         keras.callbacks.ModelCheckpoint(path)])
    step = _value(model.optimizer.iterations)
    expected = 0.2 * 0.05 * 0.5 * (1 + np.cos(np.pi * step / 100))
    assert _value(model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-6)
    healing = SelfHealing()
    loaded.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[healing])
    assert healing.multiplier == pytest.approx(0.2) and healing.interventions == []
    after = _value(loaded.optimizer.iterations)
    assert after == step + 8
    assert _value(loaded.optimizer.learning_rate) == pytest.approx(
        0.2 * 0.05 * 0.5 * (1 + np.cos(np.pi * after / 100)), rel=1e-5)


# ------------------------------------------------------------------ presets, command, arguments


def test_on_by_default_in_every_preset_and_the_train_command():
    from kerastoolkit import cli
    from kerastoolkit.cli.train import _recipe

    for name in kt.presets.names():
        callbacks = kt.presets.get(name).callbacks(epochs=10, directory="snaps", data=np.zeros((4, 64)))
        assert [type(c) for c in callbacks].count(SelfHealing) == 1, name
        assert isinstance(callbacks[-1], SelfHealing), name  # last: the others end before it raises
    recipe = kt.presets.get("adam", self_healing={"snapshot_every": 4})
    assert recipe.callbacks()[-1].snapshot_every == 4
    assert not any(isinstance(c, SelfHealing) for c in kt.presets.get("adam", self_healing=None).callbacks())
    with pytest.raises(ValueError, match="self_healing"):
        kt.presets.get("adam", self_healing=[1])
    parser = cli.build_parser()
    off = parser.parse_args(["train", "--no-self-healing"])
    assert _recipe(kt.presets.get("adam"), off, True).config["self_healing"] is None
    on = parser.parse_args(["train", "--self-healing"])
    assert _recipe(kt.presets.get("adam", self_healing=None), on, True).config["self_healing"] == {}


def test_config_roundtrip_and_bad_arguments():
    healing = SelfHealing(snapshot_every=5, factor=0.3, max_attempts=4, attempt_window=9,
                          spike_threshold=8.0, divergence=0.6, window=40, min_steps=15)
    assert_config_roundtrip(healing)
    for kwargs, error in (({"factor": 1.0}, "factor=1.0"), ({"snapshot_every": 0}, "snapshot_every=0"),
                          ({"spike_threshold": 0}, "spike_threshold=0"), ({"window": 5}, "window=5"),
                          ({"divergence": 1.5}, "divergence=1.5")):
        with pytest.raises(ValueError, match=error):
            SelfHealing(**kwargs)
    with pytest.raises(TypeError, match="max_attempts"):
        SelfHealing(max_attempts="3")
