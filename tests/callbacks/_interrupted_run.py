"""The run that `test_interruptions.py` interrupts, with every resumable callback.

A tiny MLP on 256 digits, 6 epochs of 4 steps, with `Warmup`, `PlateauDecay`,
`MomentumSchedule`, `SnapshotEnsemble`, `SWA`, `CurveDiagnostics` and
`keras.callbacks.BackupAndRestore` sharing one backup folder.

`python -m tests.callbacks._interrupted_run ROOT EPOCH BATCH` runs it in a
process that kills itself (SIGKILL: no clean-up, no `on_train_end`) after
batch `BATCH` of epoch `EPOCH`, like a machine that disappears mid-epoch.
"""

import os
import signal
import sys

import keras
import numpy as np

import kerastoolkit as kt

EPOCHS = 6
BATCH = 64
ROWS = 256  # 4 steps per epoch
SCORES = [2.0, 1.5, 1.5, 1.49, 1.2, 1.3]  # PlateauDecay(patience=1) reduces after epochs 2 and 5


def data():
    from tests.callbacks._util import digits

    (x, y), (xt, _) = digits()
    return x[:ROWS].reshape(ROWS, -1), y[:ROWS], xt[:32].reshape(32, -1)


def make_model():
    keras.utils.set_random_seed(0)  # a new process builds the same model
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.5), "sparse_categorical_crossentropy")
    return model


def make_callbacks(root):
    """The callbacks of one `fit` (new objects every time, as a rerun cell makes)."""
    from tests.callbacks._util import InjectMetric

    backup = os.path.join(root, "backup")
    beta = kt.schedules.Warmup(0.9, warmup_steps=10, start=0.5)
    return {
        "score": InjectMetric("score", SCORES),
        "warmup": kt.callbacks.Warmup(warmup_steps=6),
        "plateau": kt.callbacks.PlateauDecay(monitor="score", factor=0.5, patience=1,
                                             backup_dir=backup),
        "momentum": kt.callbacks.MomentumSchedule(beta),
        "snapshots": kt.callbacks.SnapshotEnsemble(cycles=3, total_epochs=EPOCHS,
                                                   directory=os.path.join(root, "snaps")),
        "swa": kt.callbacks.SWA(start_epoch=3, backup_dir=backup),
        "diagnostics": kt.callbacks.CurveDiagnostics(backup_dir=backup),
        "backup": keras.callbacks.BackupAndRestore(backup),
    }


def fit(model, callbacks, extra=()):
    """`fit` with the callbacks in order; `extra` go just before `BackupAndRestore`."""
    ordered = [c for k, c in callbacks.items() if k != "backup"] + list(extra)
    x, y, _ = data()
    return model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                     callbacks=ordered + [callbacks["backup"]])


def outcome(model, callbacks, history):
    """What the run ended with: weights, rates, callback state, the diagnosis."""
    plateau, swa = callbacks["plateau"], callbacks["swa"]
    snapshots, diagnostics = callbacks["snapshots"], callbacks["diagnostics"]
    _, _, xt = data()
    ensemble = snapshots.ensemble
    return dict(
        weights=model.get_weights(),
        iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        learning_rate=float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        momentum=float(model.optimizer.momentum),
        rate_log=history.history.get("learning_rate", []),
        plateau=(plateau.reductions, plateau.multiplier, plateau.best, plateau.wait),
        swa_count=swa.count,
        snapshots=[os.path.basename(p) for p in snapshots.snapshot_paths],
        ensemble=None if ensemble is None else ensemble.predict(xt, verbose=0),
        codes=None if diagnostics.report is None else diagnostics.report.codes,
        steps=diagnostics.step_losses()[0],
        epoch_losses=diagnostics._epoch_logs.get("loss"),
    )


class KillAt(keras.callbacks.Callback):
    """Kills this process after batch `batch` of epoch `epoch` (SIGKILL)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    root, epoch, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fit(make_model(), make_callbacks(root), extra=[KillAt(epoch, batch)])
    np.save(os.path.join(root, "not_killed.npy"), np.zeros(1))  # must not happen
