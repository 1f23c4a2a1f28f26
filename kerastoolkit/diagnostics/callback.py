"""`CurveDiagnostics`: records the learning curves during `fit` and diagnoses them."""

import csv
import json
import math
import os
import warnings

import numpy as np

import keras

from kerastoolkit import _callback_common as _common
from kerastoolkit.diagnostics import statistics as stats_lib
from kerastoolkit.distribute.cluster import chief_path
from kerastoolkit.diagnostics.curves import detect_diverging
from kerastoolkit.diagnostics.curves import DEFAULT_THRESHOLDS
from kerastoolkit.diagnostics.curves import diagnose
from kerastoolkit.diagnostics import interventions as healing
from kerastoolkit.diagnostics.locate import locate_non_finite
from kerastoolkit.diagnostics.recorder import _FIELDS as _STEP_FIELDS
from kerastoolkit.diagnostics.recorder import StepRecorder
from kerastoolkit.diagnostics.report import _json_safe

_ONLINE_CODES = ("nan", "diverging")


def batch_losses(running_means):
    """Each batch's own loss from Keras's running means over one epoch.

    In `on_train_batch_end`, Keras 3's `logs["loss"]` is the mean over the
    epoch so far, `m_k`; batch `k`'s own loss (1-based) is
    `k·m_k − (k−1)·m_(k−1)`.

    Args:
        running_means: the `logs["loss"]` values of one epoch, in order.

    Returns:
        A float64 array of per-batch losses.
    """
    m = np.asarray(running_means, dtype="float64")
    k = np.arange(1, len(m) + 1, dtype="float64")
    own = k * m
    own[1:] -= (k[1:] - 1) * m[:-1]
    return own


@keras.saving.register_keras_serializable(package="kerastoolkit")
class CurveDiagnostics(_common.ResumableMixin, keras.callbacks.Callback):
    """Records the learning curves during `fit`, diagnoses them, says what to do.

    Per step it records the batch's own loss, exactly: on TensorFlow with
    one replica a `StepRecorder` writes each step's loss, batch size and
    label sums into a ring buffer inside the train step (right for a
    partial last batch and for every step of `steps_per_execution > 1`),
    read between steps; elsewhere it falls back to `k·m_k − (k−1)·m_(k−1)`
    from Keras's running mean (equal batches assumed, a note says so). Per
    epoch it records every log value. During training it watches for `nan` (per step)
    and `diverging` (per epoch) and stops when the code is in `stop_on`,
    restoring the last finite weights after a NaN. At the end it builds
    `self.report` (a `Report`) with `diagnose`; with a `NaN` it re-runs the
    offending batch layer by layer and names the first non-finite layer
    output or gradient. With `statistics_every=N` it also gathers
    activation/gradient statistics on `statistics_data` every `N` steps.
    With `kt.callbacks.SelfHealing` in the same `fit`, a non-finite loss is
    the healer's to roll back (no stop); the steps a rollback undid leave
    the per-step curve, and the report has a `healed` finding and the
    interventions.

    Give the same `backup_dir` as `keras.callbacks.BackupAndRestore` (listed
    after this callback) and a killed run that is resumed keeps the history
    recorded before the kill: the report, `steps.csv` and `epochs.csv` of the
    resumed run cover every epoch, as an uninterrupted run's do (the files
    go when `BackupAndRestore` removes its folder at the end of a completed
    `fit`; in a folder of their own they stay, and a later `fit` that starts
    at one of their epochs continues that history). Under
    `MultiWorkerMirroredStrategy` only the chief writes `log_dir`; give each
    worker its own `backup_dir` (`kt.distribute.worker_backup_dir`).

    Args:
        log_dir: directory for `steps.csv`, `epochs.csv`, `report.json` and
            `curves.png`. Defaults to `None` (nothing written).
        stop_on: codes that stop training as soon as they are seen; any of
            `"nan"`, `"diverging"`. Defaults to `("nan",)`.
        restore_finite_weights: after a NaN, put back the last weights that
            were finite (taken at each epoch start). Defaults to `True`.
        statistics_every: gather activation/gradient statistics at the start
            of training and after every this many steps (the update-to-weight
            ratio is that of the step just before). Defaults to `None` (off).
        statistics_data: the probe batch `(x, y)` for the statistics, a small
            one (32-256 examples). Required with `statistics_every`.
            Defaults to `None`.
        capture_nan_batch: keep the batch on which the loss first became
            non-finite (TensorFlow backend, non-XLA, one replica; a device copy
            made only on that batch) to locate the first non-finite layer.
            Defaults to `True`.
        thresholds: detector thresholds overriding `DEFAULT_THRESHOLDS`.
            Defaults to `None`.
        backup_dir: directory for the recorded history after each epoch
            (the `BackupAndRestore` directory), or `None`. Defaults to `None`.
        verbose: print the report at the end of training. Defaults to `0`.
        early_stopping: the `keras.callbacks.EarlyStopping` of the same
            `fit`. When it restores the best weights, the report judges the
            model it leaves: overfitting after the restored epoch is
            reported as `info` (see `diagnose(restored_epoch=...)`). Not
            part of `get_config` (it is another callback of the same `fit`).
            Defaults to `None`.

    Raises:
        ValueError: for an unknown code in `stop_on`, a non-positive
            `statistics_every` or `statistics_every` without
            `statistics_data`.
        TypeError: if `early_stopping` is not a
            `keras.callbacks.EarlyStopping`.

    Example:

    ```python
    cb = kt.callbacks.CurveDiagnostics(log_dir="runs/1")
    model.fit(x, y, validation_split=0.2, epochs=20, callbacks=[cb])
    print(cb.report)
    ```
    """

    def __init__(
        self,
        log_dir=None,
        stop_on=("nan",),
        restore_finite_weights=True,
        statistics_every=None,
        statistics_data=None,
        capture_nan_batch=True,
        thresholds=None,
        backup_dir=None,
        verbose=0,
        early_stopping=None,
    ):
        super().__init__()
        if early_stopping is not None and not isinstance(early_stopping, keras.callbacks.EarlyStopping):
            raise TypeError(
                "`early_stopping` must be the `keras.callbacks.EarlyStopping` passed to the "
                f"same fit, or None. Received: early_stopping={early_stopping!r}"
            )
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(
                f"`log_dir` must be a path or None. Received: log_dir={log_dir!r}"
            )
        if isinstance(stop_on, str):
            stop_on = (stop_on,)
        stop_on = tuple(stop_on or ())
        for code in stop_on:
            if code not in _ONLINE_CODES:
                raise ValueError(
                    f"`stop_on` may contain {list(_ONLINE_CODES)}. "
                    f"Received: stop_on={stop_on}"
                )
        if statistics_every is not None and (
            not isinstance(statistics_every, int)
            or isinstance(statistics_every, bool)
            or statistics_every < 1
        ):
            raise ValueError(
                "`statistics_every` must be a positive integer or None. "
                f"Received: statistics_every={statistics_every!r}"
            )
        if statistics_every is not None and statistics_data is None:
            raise ValueError(
                "`statistics_every` needs a probe batch in `statistics_data`. "
                "Received: statistics_data=None"
            )
        if thresholds is not None:
            unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
            if unknown:
                raise ValueError(
                    f"Unknown thresholds {unknown}. Received: thresholds={thresholds}"
                )
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.stop_on = stop_on
        self.restore_finite_weights = bool(restore_finite_weights)
        self.statistics_every = statistics_every
        self.statistics_data = statistics_data
        self.capture_nan_batch = bool(capture_nan_batch)
        self.thresholds = dict(thresholds) if thresholds else None
        self.backup_dir = _common.check_backup_dir(backup_dir)
        self._state_file = _common.StateFile(self.backup_dir, "curve_diagnostics")
        self.verbose = verbose
        self.early_stopping = early_stopping
        # `on_train_batch_end` only appends floats: safe in Keras's callback
        # thread, so `fit` keeps dispatching batch-end callbacks
        # asynchronously. Statistics read the weights, so they run in
        # `on_train_batch_begin`, which `fit` calls in its own thread between
        # steps.
        self.async_safe = True
        self.report = None
        self._steps_recorder = None

    def get_config(self):
        data = self.statistics_data
        if data is not None:
            data = keras.tree.map_structure(
                lambda a: None if a is None else np.asarray(a).tolist(), data
            )
        return {
            "log_dir": self.log_dir,
            "stop_on": list(self.stop_on),
            "restore_finite_weights": self.restore_finite_weights,
            "statistics_every": self.statistics_every,
            "statistics_data": data,
            "capture_nan_batch": self.capture_nan_batch,
            "thresholds": self.thresholds,
            "backup_dir": self.backup_dir,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("statistics_data") is not None:
            config["statistics_data"] = tuple(
                None if a is None else np.asarray(a, dtype="float32")
                for a in config["statistics_data"]
            )
        return cls(**config)

    # ------------------------------------------------------------ set-up

    def set_params(self, params):
        super().set_params(params)
        # `fit` builds its train function right after the callbacks' `set_model`
        # and `set_params`, before `on_train_begin`: this is where the step
        # recorder can go in. `params` marks this `fit`: a recorder that an
        # earlier, interrupted `fit` left on the model is replaced.
        if self.model is not None:
            self._install_recorder()

    def _install_recorder(self):
        if getattr(self, "_steps_recorder", None) is not None:
            self._steps_recorder.uninstall()
        recorder = StepRecorder(capture_nan=self.capture_nan_batch)
        self._steps_recorder = recorder if recorder.install(self.model, self.params) else None
        return self._steps_recorder is not None

    # ------------------------------------------------------------ recording

    def on_train_begin(self, logs=None):
        recorder = self._steps_recorder
        if (recorder is None or recorder.fit is not self.params) and self._install_recorder():
            # Not installed by `set_params` (a `CallbackList` built without
            # params): the train function `fit` made must see the wrapper.
            self.model.make_train_function()
        self._records = []  # (epoch, batch, running mean)
        self._exact = []  # (epoch, drained records) from the step recorder
        self._lost_steps = 0
        self._calls_since_drain = 0
        self._epoch_logs = {}
        self._epochs_seen = []
        self._epoch = 0
        self._begin_step = 0
        self._nan_seen = None
        self._nan_before_restart = False
        self._diverged = False
        self._finite_weights = None
        self._statistics = None
        self._recorder = None
        self.report = None
        self._healing = None  # the intervention log of a healer in this fit
        self._ended = False
        self._begin_fit()
        if self.statistics_every is not None:
            self._recorder = stats_lib.StatisticsRecorder(
                self.model, self.statistics_data
            )
            self._statistics = dict(self._recorder.metadata(), records=[])
            record = self._recorder.record(0)  # at initialization
            record["update_ratio"] = None
            self._statistics["records"].append(record)

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_resume(epoch)
        self._epoch = epoch
        log = healing.InterventionLog.of(self.model)  # after every `on_train_begin`
        if log is not None and log.active and log is not self._healing:
            self._healing = log  # a healer (kt.callbacks.SelfHealing) in this fit
            log.on_give_up(self._end_once)
        if self.restore_finite_weights and "nan" in self.stop_on and not self._nan_seen:
            weights = self.model.get_weights()
            if all(np.all(np.isfinite(w)) for w in weights if np.issubdtype(
                    np.asarray(w).dtype, np.floating)):
                self._finite_weights = weights

    def _drain(self):
        recorder = self._steps_recorder
        if recorder is None or not recorder.installed:
            return
        drained = recorder.drain()
        self._lost_steps += drained.pop("lost")
        if len(drained["loss"]):
            self._exact.append((self._epoch, drained))
        self._calls_since_drain = 0

    def on_train_batch_begin(self, batch, logs=None):
        # Between steps, in `fit`'s own thread: the ring buffer may be read.
        self._calls_since_drain += 1
        recorder = self._steps_recorder
        if recorder is not None and self._calls_since_drain * int(
            getattr(self.model, "steps_per_execution", 1) or 1
        ) >= recorder.capacity // 2:
            self._drain()
        step = self._begin_step  # steps done so far
        self._begin_step += 1
        if self._recorder is None or self._nan_seen is not None:
            return
        every = self.statistics_every
        if step > 0 and step % every == 0:
            ratios = self._recorder.update_ratios()  # of the previous step
            record = self._recorder.record(step)
            record["update_ratio"] = ratios
            self._statistics["records"].append(record)
        if (step + 1) % every == 0:
            self._recorder.snapshot_kernels()  # before step `step`'s update

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        self._records.append((self._epoch, int(batch), value))
        healed = self._healing is not None and self._healing.active  # its to roll back
        if not math.isfinite(value) and self._nan_seen is None and not healed:
            self._nan_seen = (self._epoch, int(batch))
            if "nan" in self.stop_on:
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self._drain()
        self._epochs_seen.append(epoch)
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            column = self._epoch_logs.setdefault(key, [math.nan] * (len(self._epochs_seen) - 1))
            column.append(value)
        for column in self._epoch_logs.values():
            while len(column) < len(self._epochs_seen):
                column.append(math.nan)
        if "diverging" in self.stop_on and not self._diverged:
            loss = np.asarray(self._epoch_logs.get("loss", []), dtype="float64")
            if len(loss) >= 3 and np.all(np.isfinite(loss)):
                t = dict(DEFAULT_THRESHOLDS, **(self.thresholds or {}))
                if detect_diverging(loss, np.arange(len(loss)), "epoch", t) is not None:
                    self._diverged = True
                    self.model.stop_training = True
        if self.backup_dir is not None:
            self._save_state(epoch + 1)

    # ------------------------------------------------------------ resuming

    def _save_state(self, epochs_done):
        """Everything recorded so far, for a run resumed after `epochs_done` epochs."""
        arrays = [np.asarray(self._records, "float64").reshape(-1, 3)]
        arrays += [d[k] for _, d in self._exact for k in _STEP_FIELDS]
        before = None if self._recorder is None else self._recorder._before
        if before is not None:
            arrays += before
        state = {
            "exact_epochs": [e for e, _ in self._exact],
            "snapshot_kernels": before is not None,
            "lost_steps": self._lost_steps,
            "epoch_logs": self._epoch_logs,
            "epochs_seen": self._epochs_seen,
            "begin_step": self._begin_step,
            "nan_seen": self._nan_seen,
            "diverged": self._diverged,
            "statistics": self._statistics,
        }
        self._state_file.save(epochs_done, state, arrays)

    def _restore_state(self, state, arrays):
        records, *arrays = arrays or [np.zeros((0, 3))]
        self._records = [(int(e), int(b), float(m)) for e, b, m in records]
        n = len(_STEP_FIELDS)
        self._exact = [
            (e, dict(zip(_STEP_FIELDS, arrays[i * n:(i + 1) * n])))
            for i, e in enumerate(state["exact_epochs"])
        ]
        if self._recorder is not None and state["snapshot_kernels"]:
            self._recorder._before = arrays[len(self._exact) * n:]
        self._lost_steps = state["lost_steps"]
        self._epoch_logs = {k: list(v) for k, v in state["epoch_logs"].items()}
        self._epochs_seen = list(state["epochs_seen"])
        self._begin_step = state["begin_step"]
        self._nan_seen = None if state["nan_seen"] is None else tuple(state["nan_seen"])
        self._nan_before_restart = self._nan_seen is not None
        self._diverged = state["diverged"]
        if self._recorder is not None and state["statistics"] is not None:
            self._statistics = state["statistics"]

    # ------------------------------------------------------------ the end

    def step_losses(self):
        """Returns `(losses, epochs, batches)` of every recorded step.

        Steps a healer (`kt.callbacks.SelfHealing`) undid by a rollback are
        left out.
        """
        losses, epochs, batches = self._all_step_losses()
        kept = ~self._undone(epochs, batches)
        return losses[kept], epochs[kept], batches[kept]

    def _undone(self, epochs, batches):
        entries = [] if getattr(self, "_healing", None) is None else self._healing.entries
        return healing.undone(epochs, batches, entries)

    def _all_step_losses(self):
        """`(losses, epochs, batches)` of every recorded step.

        Each batch's own loss: exact (recorded in the train step, every step
        also with `steps_per_execution > 1`, true batch sizes) on TensorFlow
        with one replica; elsewhere recovered from Keras's running mean as
        `k·m_k − (k−1)·m_(k−1)`, which assumes equal batches.
        """
        exact = getattr(self, "_exact", None)
        if exact:
            losses, epochs, batches = [], [], []
            position = {}
            for e, drained in exact:
                n = len(drained["loss"])
                start = position.get(e, 0)
                losses += drained["loss"].tolist()
                epochs += [e] * n
                batches += list(range(start, start + n))
                position[e] = start + n
            return (np.asarray(losses), np.asarray(epochs, "int64"),
                    np.asarray(batches, "int64"))
        records = sorted(getattr(self, "_records", []), key=lambda r: (r[0], r[1]))
        losses, epochs, batches = [], [], []
        by_epoch = {}
        for e, b, m in records:
            by_epoch.setdefault(e, []).append((b, m))
        for e in sorted(by_epoch):
            items = by_epoch[e]
            own = batch_losses([m for _, m in items])
            losses += own.tolist()
            epochs += [e] * len(items)
            batches += [b for b, _ in items]
        return np.asarray(losses), np.asarray(epochs, "int64"), np.asarray(batches, "int64")

    def step_labels(self):
        """Per-step `(size, label_sum, label_sq_sum)` arrays, or `None`."""
        exact = getattr(self, "_exact", None)
        if not exact:
            return None
        kept = ~self._undone(*self._all_step_losses()[1:])
        return {
            key: np.concatenate([d[key] for _, d in exact])[kept]
            for key in ("size", "label_sum", "label_sq_sum")
        }

    def _end_once(self):
        if not self._ended:  # a healer gave up before this callback's `on_train_end`
            self.on_train_end()

    def on_train_end(self, logs=None):
        self._ended = True
        self._resume_if_no_epoch_ran()
        self._drain()
        batch = None
        if self._steps_recorder is not None:
            batch = self._steps_recorder.uninstall()
            self._steps_recorder = None
        losses, epochs, batches = self.step_losses()
        if not self._epoch_logs and not len(losses):
            warnings.warn(
                "`CurveDiagnostics` recorded no step and no epoch in this `fit`: "
                "there is no report (`report` is None).",
                stacklevel=2,
            )
            return
        nan_origin = None
        if self._nan_seen is not None:
            e, b = self._nan_seen
            nan_origin = {"epoch": e, "batch": b}
            if self._nan_before_restart:
                nan_origin["description"] = (
                    "(the batch and the last finite weights were lost when the run "
                    "was restarted: the layer is not located)"
                )
            elif batch is not None:
                try:
                    nan_origin.update(locate_non_finite(
                        self.model, batch, weights=self._finite_weights
                    ))
                except Exception as error:  # noqa: BLE001 - report, don't crash fit
                    nan_origin["description"] = (
                        f"(locating the layer failed: {type(error).__name__}: {error})"
                    )
            else:
                nan_origin["description"] = (
                    "(the batch was not kept: capture needs the TensorFlow "
                    "backend without XLA on one replica)"
                )
            if self.restore_finite_weights and "nan" in self.stop_on and (
                self._finite_weights is not None
            ):
                self.model.set_weights(self._finite_weights)
                nan_origin["restored_weights_from_epoch"] = e
        epoch_logs = dict(self._epoch_logs) or None
        steps_per_epoch = (self.params or {}).get("steps")
        if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            steps_per_epoch = None
        self.report = diagnose(
            epochs=epoch_logs,
            steps=losses if len(losses) else None,
            steps_per_epoch=steps_per_epoch,
            statistics=self._statistics,
            nan_origin=nan_origin,
            thresholds=self.thresholds,
            step_labels=self.step_labels(),
            restored_epoch=self._restored_epoch(epoch_logs),
        )
        if self._healing is not None:
            healing.attach(self.report, self._healing.entries, epochs, batches)
        if not self._exact and len(losses):
            self.report.notes.append(
                "per-step losses recovered from Keras's running mean (exact "
                "recording needs TensorFlow and one replica): a partial last "
                "batch or `steps_per_execution > 1` distorts them."
            )
        if self._lost_steps:
            self.report.notes.append(
                f"{self._lost_steps} steps were not recorded (ring buffer overrun)."
            )
        if "chance_plateau" in self.report.codes or "not_training" in self.report.codes:
            _add_non_finite_weights(self.report, self.model)
        if self.log_dir:
            self.write(chief_path(self.log_dir), losses, epochs, batches)  # chief only
        if self.verbose:
            print(self.report)

    def _restored_epoch(self, epoch_logs):
        """The epoch-log position of the weights `early_stopping` leaves, or None."""
        es = self.early_stopping
        if (es is None or not es.restore_best_weights or es.best_weights is None
                or not epoch_logs or "val_loss" not in epoch_logs
                or es.best_epoch not in self._epochs_seen):
            return None
        position = self._epochs_seen.index(es.best_epoch)
        return position if np.isfinite(epoch_logs["val_loss"][position]) else None

    def write(self, log_dir, losses=None, epochs=None, batches=None):
        """Writes `steps.csv`, `epochs.csv`, `report.json` and `curves.png`."""
        os.makedirs(log_dir, exist_ok=True)
        if losses is None:
            losses, epochs, batches = self.step_losses()
        labels = self.step_labels()
        if labels is not None and len(labels["size"]) != len(losses):
            labels = None
        with open(os.path.join(log_dir, "steps.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            extra = [] if labels is None else ["size", "label_sum", "label_sq_sum"]
            writer.writerow(["step", "epoch", "batch", "loss"] + extra)
            for i, (e, b, v) in enumerate(zip(epochs, batches, losses)):
                row = [i, int(e), int(b), repr(float(v))]
                if labels is not None:
                    row += [repr(float(labels[k][i])) for k in extra]
                writer.writerow(row)
        if self._epoch_logs:
            keys = list(self._epoch_logs)
            with open(os.path.join(log_dir, "epochs.csv"), "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["epoch"] + keys)
                for i, e in enumerate(self._epochs_seen):
                    writer.writerow([e] + [repr(float(self._epoch_logs[k][i])) for k in keys])
        with open(os.path.join(log_dir, "report.json"), "w") as handle:
            handle.write(self.report.to_json())
        if self._statistics:
            with open(os.path.join(log_dir, "statistics.json"), "w") as handle:
                json.dump(_json_safe(self._statistics), handle)
        self.report.plot(os.path.join(log_dir, "curves.png"))


def _add_non_finite_weights(report, model):
    """Names the layers whose weights are not finite (NaN behind ReLU)."""
    bad = []
    for layer in model.layers:
        for v in layer.weights:
            value = np.asarray(keras.ops.convert_to_numpy(v))
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                bad.append(f"{layer.name}/{v.name}")
    if bad and "not_training" in report.codes and "chance_plateau" not in report.codes:
        # A flat loss with NaN weights is the NaN-behind-ReLU collapse, early
        # (before the loss had fallen enough to show a jump): name it so.
        from kerastoolkit.diagnostics.curves import ADVICE
        from kerastoolkit.diagnostics.report import CODES
        from kerastoolkit.diagnostics.report import Finding

        i = report.codes.index("not_training")
        flat = report.findings[i]
        level = flat.evidence.get("end")
        evidence = dict(flat.evidence, level=level)
        chance = ""
        if isinstance(level, float) and level > 0:
            classes = int(round(math.exp(level)))
            if classes >= 2 and abs(level - math.log(classes)) < 0.01 * math.log(classes):
                evidence["chance_classes"] = classes
                chance = f" (ln {classes}: a uniform guess over {classes} classes)"
        report.findings[i] = Finding(
            "chance_plateau", CODES["chance_plateau"],
            f"The training loss stayed flat at {level:.4g}{chance}.", ADVICE["chance_plateau"],
            evidence)
    for f in report.findings:
        if f.code == "chance_plateau":
            f.evidence["non_finite_weights"] = bad
            if bad:
                f.message += (
                    f" The model's weights are not finite in {', '.join(bad[:5])}"
                    f"{' ...' if len(bad) > 5 else ''}: NaN weights behind ReLU "
                    "(ReLU maps NaN to 0, so the loss stays finite)."
                )
            else:
                f.message += " Every weight is finite."


__all__ = ["CurveDiagnostics", "batch_losses"]
