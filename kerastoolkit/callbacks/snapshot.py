"""`SnapshotEnsemble`: cyclic cosine learning rate and one snapshot per cycle."""

import glob
import os
import re
import warnings

import keras

from kerastoolkit import _callback_common as _common
from kerastoolkit import _rate
from kerastoolkit.distribute.cluster import chief_path
from kerastoolkit.schedules.cyclic_cosine import CyclicCosine

_SNAPSHOT = re.compile(r"snapshot_(\d+)\.keras$")


@keras.saving.register_keras_serializable(package="kerastoolkit", name="EpochAlignedCyclicCosine")
class _EpochAlignedCyclicCosine(CyclicCosine):
    """`CyclicCosine` at step `t + offset`: `SnapshotEnsemble`'s rate.

    The callback sets `offset = epoch · S − iterations` at every epoch start
    (`S` steps per epoch), so that the cycle position follows the epochs
    of the run even when the optimizer's step count does not (a run resumed
    with another batch size; steps a loss-scale optimizer skipped). In an
    uninterrupted run it stays 0. A variable: read by the traced step on
    TensorFlow without retracing.
    """

    def __init__(self, initial_learning_rate, total, cycles, steps_per_epoch=None,
                 name="CyclicCosine", offset=0):
        super().__init__(initial_learning_rate, total, cycles, steps_per_epoch, name)
        if not _common.is_int(offset):
            raise TypeError(f"Argument `offset` must be an integer. Received: offset={offset!r}")
        offset = int(offset)
        self._offset = keras.Variable(
            offset, dtype="int32", trainable=False, autocast=False, name="cycle_offset"
        )
        self._offset_value = offset

    @property
    def offset(self):
        return self._offset_value

    @offset.setter
    def offset(self, value):
        self._offset_value = int(value)
        self._offset.assign(self._offset_value)

    def _t(self, step):
        step = keras.ops.convert_to_tensor(step)
        return super()._t(keras.ops.add(step, keras.ops.cast(self._offset, step.dtype)))

    def get_config(self):
        return dict(super().get_config(), offset=self.offset)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SnapshotEnsemble(_common.ResumableMixin, keras.callbacks.Callback):
    """Snapshot ensembles: "train 1, get M for free" (Huang et al. 2017).

    The learning rate follows a cyclic cosine annealing with `M = cycles`
    restarts over `T` steps (`T = total_epochs` times the steps per epoch,
    `E = total_epochs / M` epochs per cycle; `total_epochs` must be a multiple
    of `M`, so that the last snapshot too is taken at a cycle's end),

    ```
    lr(t) = η0 / 2 · (cos(π · mod(t, E·S) / (E·S)) + 1)      (S = steps per epoch)
    ```

    (`kt.schedules.CyclicCosine`, installed on the optimizer when `fit`
    starts, as part of the optimizer's rate program, `_rate.py`: a
    float rate is assigned step by step, a schedule is replaced). At the end of every cycle, where the rate is lowest and the model
    sits in a local minimum, the model is saved as
    `directory/snapshot_<k>.keras`. When training ends, `self.ensemble` is a
    `kt.models.Ensemble` of the snapshots (it averages their predicted class
    distributions); `kt.models.Ensemble.load(directory)` rebuilds it later.

    The rate follows from the optimizer step and the snapshots from the
    files, so a run resumed by `keras.callbacks.BackupAndRestore` ends with
    the same snapshots as an uninterrupted run (also one resumed after its
    last epoch: its `ensemble` holds the snapshots on disk). The cycles stay
    on epoch boundaries: at each epoch start the cycle position is set to
    `epoch · S` (plus the steps of the epoch so far), so a run resumed with
    another batch size (another `S`) still ends each cycle, and takes its
    snapshot, at an epoch's end where the rate is lowest. A run that starts
    at epoch 0 first removes older `snapshot_*.keras` files from `directory`. Under
    `MultiWorkerMirroredStrategy` only the chief writes `directory`; the
    other workers write to temporary folders (`kt.distribute.chief_path`),
    so a restarted non-chief worker's `ensemble` holds only the snapshots
    taken since the restart (the chief's holds them all).

    Args:
        cycles: int >= 1, `M`, the number of cycles and snapshots.
        total_epochs: int, a multiple of `cycles`, the epochs of the `fit` call.
        directory: where the snapshots are written.
        initial_learning_rate: float > 0, `η0`, the rate at each restart, or
            `None` for the optimizer's rate when `fit` starts. Defaults to `None`.
        verbose: int, 1 prints each snapshot. Defaults to `0`.

    Raises:
        ValueError: for `cycles < 1`, `total_epochs` not a multiple of
            `cycles` or a non-positive `initial_learning_rate`; when `fit`
            starts, if it runs fewer epochs than one cycle.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    snapshots = kt.callbacks.SnapshotEnsemble(cycles=5, total_epochs=50, directory="snaps")
    model.fit(x, y, epochs=50, callbacks=[snapshots])
    snapshots.ensemble.predict(x_test)
    ```

    References:
        - [Huang et al., 2017](https://arxiv.org/abs/1704.00109), "Snapshot
          Ensembles: Train 1, get M for free", Eq. (2).
    """

    def __init__(self, cycles, total_epochs, directory, initial_learning_rate=None, verbose=0):
        super().__init__()
        self.cycles = _common.check_int("cycles", cycles, 1)
        self.total_epochs = _common.check_int("total_epochs", total_epochs, 1)
        if self.total_epochs < self.cycles:
            raise ValueError(
                "Argument `total_epochs` must be at least `cycles` "
                f"({self.cycles}): one snapshot per cycle. "
                f"Received: total_epochs={self.total_epochs}"
            )
        if self.total_epochs % self.cycles:
            below = self.total_epochs - self.total_epochs % self.cycles
            divisors = [c for c in range(1, self.total_epochs + 1) if self.total_epochs % c == 0]
            raise ValueError(
                f"Argument `total_epochs` ({self.total_epochs}) must be a multiple of "
                f"`cycles` ({self.cycles}): otherwise the last cycle is cut in the "
                "middle and its snapshot is taken where the rate is still high, "
                "not at a cycle's minimum. Use total_epochs="
                f"{below} or {below + self.cycles}, or cycles in {divisors}. "
                f"Received: total_epochs={self.total_epochs}, cycles={self.cycles}"
            )
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise TypeError(
                f"Argument `directory` must be a path. Received: directory={directory!r}"
            )
        self.directory = os.fspath(directory)
        if initial_learning_rate is not None:
            initial_learning_rate = _common.check_float(
                "initial_learning_rate", initial_learning_rate
            )
            if initial_learning_rate <= 0:
                raise ValueError(
                    "Argument `initial_learning_rate` must be > 0. "
                    f"Received: initial_learning_rate={initial_learning_rate}"
                )
        self.initial_learning_rate = initial_learning_rate
        self.verbose = _common.check_int("verbose", verbose, 0)
        self.epochs_per_cycle = self.total_epochs // self.cycles
        self.schedule = None
        self._offset = 0  # the cycle position's offset from the optimizer step
        self.snapshot_paths = []
        self.ensemble = None

    def set_params(self, params):
        super().set_params(params)
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._install(params)

    def _install(self, params):
        program = _rate.RateProgram.of(self.model, self)
        steps = (params or {}).get("steps")
        if not steps:
            raise ValueError(
                "`SnapshotEnsemble` needs the number of steps per epoch; pass "
                f"`steps_per_epoch` to `fit`. Received: steps={steps}"
            )
        steps_per_cycle = self.epochs_per_cycle * int(steps)
        eta0 = self.initial_learning_rate or getattr(self, "_eta0", None)
        cycles = self.cycles
        snapshot = self

        def factory(inner):
            rate = eta0
            if rate is None:  # the optimizer's rate when `fit` first starts
                rate = float(inner) if not _common.is_schedule(inner) else (
                    program.current_rate()
                )
            snapshot._eta0 = rate  # a later `fit` restarts from the same η0
            return _EpochAlignedCyclicCosine(
                rate,
                total=cycles * steps_per_cycle,
                cycles=cycles,
                name=_rate.MARK + "CyclicCosine",
                offset=snapshot._offset,
            )

        self.schedule = program.register(
            self, factory, "SnapshotEnsemble", per_step=True, replace=True
        )
        program.check_execution(self.model, self)
        self._program = program

    def _existing(self):
        found = {}
        for path in glob.glob(os.path.join(chief_path(self.directory), "snapshot_*.keras")):
            match = _SNAPSHOT.search(path)
            if match:
                found[int(match.group(1))] = path
        return found

    def on_train_begin(self, logs=None):
        self._install(self.params)
        self._begin_fit()
        self.ensemble = None
        epochs = (self.params or {}).get("epochs")
        if epochs is not None and epochs < self.epochs_per_cycle:
            raise ValueError(
                f"`SnapshotEnsemble` takes a snapshot at the end of each cycle of "
                f"{self.epochs_per_cycle} epochs, but `fit` runs {epochs} epochs: "
                "no snapshot would be taken and `ensemble` would stay `None`. "
                "Run `fit` for `total_epochs` epochs or lower `total_epochs`. "
                f"Received: epochs={epochs}, total_epochs={self.total_epochs}, "
                f"cycles={self.cycles}"
            )
        if epochs is not None and epochs != self.total_epochs:
            warnings.warn(
                f"`SnapshotEnsemble` was set up for total_epochs={self.total_epochs}, "
                f"but `fit` runs epochs={epochs}: it takes "
                f"{min(epochs, self.total_epochs) // self.epochs_per_cycle} of "
                f"{self.cycles} snapshots.",
                stacklevel=2,
            )
        self._program.sync(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._program.after_step(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._align(epoch)
        self._program.sync(self.model)
        self._maybe_resume(epoch)

    def _align(self, epoch):
        """Puts the cycle position at `epoch · S`, whatever the optimizer's step."""
        steps = int(self.params["steps"])
        offset = epoch * steps - _rate._step(self._program.optimizer)
        self._offset = offset
        if offset != self.schedule.offset:
            self.schedule.offset = offset
            if self._program.variable is None and keras.backend.backend() == "jax":
                _rate.retrace(self.model)  # jit captured the old value

    def _resume_at(self, epoch):
        """Takes up the snapshots on disk of the cycles completed before `epoch`."""
        done = epoch // self.epochs_per_cycle
        existing = self._existing()
        for k, path in existing.items():
            if k > done:  # stale files of an older run
                os.remove(path)
        self.snapshot_paths = [existing[k] for k in sorted(existing) if k <= done]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.epochs_per_cycle:
            return
        k = (epoch + 1) // self.epochs_per_cycle
        if k > self.cycles or (self.snapshot_paths and self._index(self.snapshot_paths[-1]) >= k):
            return
        os.makedirs(chief_path(self.directory), exist_ok=True)  # only the chief's persist
        path = os.path.join(chief_path(self.directory), f"snapshot_{k:02d}.keras")
        self.model.save(path)
        self.snapshot_paths.append(path)
        if logs is not None:  # the snapshot's number: the same on every worker and after a resume
            logs["snapshots"] = k
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: SnapshotEnsemble saved {path}")

    @staticmethod
    def _index(path):
        return int(_SNAPSHOT.search(path).group(1))

    def on_train_end(self, logs=None):
        self._resume_if_no_epoch_ran()
        self._program.release(self)
        if self.snapshot_paths:
            from kerastoolkit.models.ensemble import Ensemble

            self.ensemble = Ensemble.load(chief_path(self.directory), pattern="snapshot_*.keras")
        else:
            warnings.warn(
                "`SnapshotEnsemble`: training ended before the first cycle "
                f"({self.epochs_per_cycle} epochs) was complete (stopped early?): "
                "no snapshot was taken and `ensemble` is `None`.",
                stacklevel=2,
            )

    def get_config(self):
        return {
            "cycles": self.cycles,
            "total_epochs": self.total_epochs,
            "directory": self.directory,
            "initial_learning_rate": self.initial_learning_rate,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
