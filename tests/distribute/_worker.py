"""One training process of the multi-worker tests (run as a script).

`python _worker.py SPEC_JSON`: SPEC has `root` (shared folder), `index` (the
worker index, or `null` for a single process with the default strategy),
`ports` (the cluster's ports on 127.0.0.1), `epochs`, and optionally
`kill_at` = [epoch, batch]: this worker kills itself (SIGKILL, no clean-up)
after that batch, like a machine that disappears mid-epoch.

It trains a small MLP on 512 digits with a global batch of 64 (8 steps per
epoch), with the toolkit's SGD and callbacks (warmup, plateau decay, momentum
schedule in the optimizer, SWA, snapshots, diagnostics) and `keras.callbacks.BackupAndRestore`,
then distils it into a smaller student for one epoch (`kt.models.Distiller`,
with a NaN in one example, healed by `kt.callbacks.SelfHealing`) and writes `out-<name>.npz` (weights), `student-<name>.npz` and
`out-<name>.json` (history, callback state, files) in `root`.
"""

import json
import os
import signal
import sys

import time

_T0 = time.time()
spec = json.loads(sys.argv[1])
index = spec["index"]
if index is not None:
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in spec["ports"]]},
        "task": {"type": "worker", "index": index},
    })
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import kerastoolkit as kt  # noqa: E402

root = spec["root"]
name = "single" if index is None else f"worker{index}"
print(f"imports {time.time() - _T0:.1f}s", flush=True)
strategy = kt.distribute.strategy("auto" if index is not None else "none", verbose=0)

data = load_digits()
x = (data.data[:512] / 16.0).astype("float32")
y = data.target[:512].astype("int32")
GLOBAL_BATCH = 64

keras.utils.set_random_seed(0)
with strategy.scope():
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(
        optimizer=kt.optimizers.SGD(  # momentum β(t) warmed up from 0.5 to 0.9
            learning_rate=0.1,
            momentum=kt.schedules.Warmup(0.9, warmup_steps=12, start=0.5)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


backup = kt.distribute.worker_backup_dir(os.path.join(root, "backup"))
plateau = kt.callbacks.PlateauDecay(monitor="loss", factor=0.5, patience=1, min_delta=10.0,
                                    backup_dir=backup)
swa = kt.callbacks.SWA(start_epoch=2, backup_dir=backup)
snapshots = kt.callbacks.SnapshotEnsemble(cycles=2, total_epochs=spec["epochs"],
                                          directory=os.path.join(root, "snaps"))
diagnostics = kt.callbacks.CurveDiagnostics(log_dir=os.path.join(root, "diagnostics"),
                                            backup_dir=backup)
seen_lr, seen_momentum = [], []
record = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: (
    seen_lr.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))),
    seen_momentum.append(float(keras.ops.convert_to_numpy(model.optimizer.current_momentum())))))
callbacks = [
    snapshots,  # its cyclic cosine first, then warmup and plateau wrap it
    kt.callbacks.Warmup(warmup_steps=4),
    plateau,
    swa,
    diagnostics,
    record,
    keras.callbacks.BackupAndRestore(backup),
]
if spec.get("kill_at") and index == spec["kill_at"][2]:
    callbacks.append(KillAt(*spec["kill_at"][:2]))
print(f"strategy+model {time.time() - _T0:.1f}s", flush=True)
history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=spec["epochs"], shuffle=False,
                    verbose=0, callbacks=callbacks)
print(f"fit {time.time() - _T0:.1f}s", flush=True)
np.savez(os.path.join(root, f"out-{name}.npz"), *model.get_weights())

# The toolkit's Distiller (a keras.Model with its own train step) distils the
# trained model into a smaller student, one epoch, under the same strategy.
keras.utils.set_random_seed(1)
with strategy.scope():
    student = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(10)])
    distiller = kt.models.Distiller(model, student, temperature=2.0, alpha=0.5,
                                    teacher_outputs="probabilities")
    distiller.compile(kt.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
student_before = student.get_weights()
# A NaN in one example of batch 5 (one worker's share of it): SelfHealing rolls the
# distillation back at that step, on both workers as in the single process.
x_nan = x.copy()
x_nan[5 * GLOBAL_BATCH + 40, 3] = np.nan
healing = kt.callbacks.SelfHealing(snapshot_every=1)
distilled = distiller.fit(x_nan, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0,
                          callbacks=[healing])
np.savez(os.path.join(root, f"student-{name}.npz"), *student.get_weights())
from kerastoolkit.distribute import cluster  # noqa: E402

with open(os.path.join(root, f"out-{name}.json"), "w") as f:
    json.dump({
        "history": history.history,
        "epochs_run": history.epoch,
        "is_chief": kt.distribute.is_chief(),
        "replicas": strategy.num_replicas_in_sync,
        "plateau": [plateau.reductions, plateau.multiplier, plateau.wait],
        "swa_count": swa.count,
        "snapshots": [os.path.relpath(p, root) if p.startswith(root) else "TEMP"
                      for p in snapshots.snapshot_paths],
        "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "lr": seen_lr,
        "momentum": seen_momentum,
        "distiller_loss": distilled.history["loss"],
        "healing": [[e["step"], e["batch"], e["restored"]["batch"], e["seen"]["kind"]]
                    for e in healing.interventions],
        "student_moved": max(float(np.abs(a - b).max())
                             for a, b in zip(student.get_weights(), student_before)),
        "diagnostics": {"steps": diagnostics.step_losses()[0].tolist(),
                        "epochs": diagnostics.report.to_dict()["epochs"],
                        "codes": diagnostics.report.codes},
        "worker_temp": list(cluster._WORKER_TEMP),
    }, f)
print(f"written {time.time() - _T0:.1f}s", flush=True)
# TensorFlow's teardown of a multi-worker cluster (coordination service,
# gRPC server) takes tens of seconds; the results are written, so leave now.
kt.distribute.remove_worker_files()
sys.stdout.flush()
os._exit(0)
