"""`SelfHealing`: roll back a NaN, a loss spike or a divergence, lower the rate, go on."""

import collections
import math

import keras
import numpy as np

from kerastoolkit import _callback_common as _common
from kerastoolkit import _keras_compat
from kerastoolkit import _rate
from kerastoolkit.diagnostics.interventions import InterventionLog
from kerastoolkit.diagnostics.interventions import describe
from kerastoolkit.schedules.scaled import Scaled

_KIND = "HealingScale"  # the rate program member's kind (schedule name MARK + kind)
_SLOTS = 3  # snapshot buffers: the newest, the one before, the best level


class SelfHealingError(RuntimeError):
    """`SelfHealing` gave up: the fault kept coming back after every rollback."""


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SelfHealing(_common.ResumableMixin, keras.callbacks.Callback):
    """Rolls training back from a NaN, a loss spike or a divergence, and goes on.

    After every step (every `steps_per_execution` steps: one check per call
    of the train function) the callback reads the training loss of the step,
    exactly (the increments of Keras's loss tracker, summed over replicas
    and workers), and whether the weights are still finite (what a
    non-finite gradient leaves behind; a loss-scale overflow that
    `LossScaleOptimizer` skipped leaves them finite and is no fault). It
    sees a fault when

    - the loss is not finite, or a weight is not finite;
    - **spike**: with `ℓ` the step's loss, `m` and `q` the median and the
      90th percentile of the last `window` healthy steps' losses, and `s`
      the median of the run's first 10 steps,
      `ℓ > max(m + spike_threshold · max(q − m, 0.1·m), 2·s)`: far above
      the recent noise *and* twice as bad as the untrained model (late in
      training, small batches with a few confidently wrong examples lie far
      above the median, never that high);
    - **divergence**: with `c` the median of the last 10 steps and `b` its
      lowest value so far, `c > b + divergence · (s − b)` and `c > 2·b`:
      the run lost that share of the progress it had made.

    Both rules start after `min_steps` healthy steps, so the first steps
    never trigger them. They were checked on every preset and dataset
    (`benchmarks/self_healing.py healthy`, batches of 8 included).

    On a fault it restores an in-memory snapshot (taken every
    `snapshot_every` healthy steps: weights, non-trainable state such as
    BatchNorm statistics and seed generators, the whole optimizer state with
    its iteration count, and the metrics), so the batches from the snapshot
    to the fault are skipped. Nothing is written to disk and nothing is
    recompiled. The rate, warmup and momentum schedules (`kt.callbacks.Warmup`,
    `SnapshotEnsemble`, `MomentumSchedule`, a schedule on the optimizer)
    follow the restored iteration count; `PlateauDecay`'s epoch-end
    decisions stand.

    A non-finite loss or a spike after which the restored state trains on
    was one bad batch (bad inputs, a rare overflow): skipping it is enough,
    the rate stays. A fault within `attempt_window` steps of the previous
    rollback means the restored state failed at once on other batches:
    another attempt at the same trouble, which goes one snapshot further
    back, and from the third attempt on the learning rate is multiplied by
    `factor`. A divergence goes back to the snapshot with the lowest loss
    and lowers the rate at once. The rate goes through the optimizer's
    rate program
    (`kerastoolkit/_rate.py`: a `kt.schedules.Scaled` member, like
    `PlateauDecay`'s, so it composes with warmup, schedules, plateau decay
    and snapshot ensembles; a float rate stays a float). After
    `max_attempts` attempts in a row it gives up: it restores the newest
    snapshot, stops training and raises `SelfHealingError` from
    `on_train_end`, with every intervention in the message.

    Every intervention is in `interventions` (step, what was seen, what was
    done, the rate before and after), counted in `logs["interventions"]`
    at each epoch's end (with `logs["learning_rate"]`), and reported by
    `kt.callbacks.CurveDiagnostics` (a `healed` finding, `report.json`,
    marked on `curves.png`; the undone steps leave its per-step curve). List
    it before the callbacks that read each batch's logs (it puts the
    repaired running means there) and after those whose `on_train_end`
    must run when it gives up (it raises from its own):
    `[..., PlateauDecay(), SelfHealing(), CurveDiagnostics()]`, as the
    presets and `kerastoolkit train` do.

    With `steps_per_execution = n > 1` the check reads the mean loss of the
    `n` steps of each call, and a rollback undoes whole calls. Under
    `MirroredStrategy` and `MultiWorkerMirroredStrategy` the loss read is
    the global one, so every worker decides the same on the same step. On
    JAX the callback syncs the training state (`jax_state_sync`) every step.
    Memory: three copies of the weights and optimizer state.

    Give the same `backup_dir` as `keras.callbacks.BackupAndRestore` (listed
    after this callback) and a killed run resumes with the rate multiplier
    and the interventions it had.

    Args:
        snapshot_every: int >= 1, healthy steps between two snapshots.
            Defaults to `10`.
        factor: float in (0, 1), the rate multiplier of an escalated
            rollback. Defaults to `0.2`.
        max_attempts: int >= 1, rollbacks in a row (each within
            `attempt_window` steps of the previous) before giving up.
            Defaults to `5`.
        attempt_window: int >= 1, steps after a rollback within which a
            fault counts as coming back. Defaults to `3`.
        spike_threshold: float > 0, the spike rule's multiple. Defaults to
            `10.0`.
        divergence: float in (0, 1], the share of the progress a
            divergence loses. Defaults to `0.5`.
        window: int >= 10, the healthy steps the spike rule looks back on.
            Defaults to `50`.
        min_steps: int >= 10, healthy steps before the spike and divergence
            rules start. Defaults to `20`.
        backup_dir: directory for the callback's state, or `None`. Defaults
            to `None`.
        verbose: int, 1 prints each intervention. Defaults to `0`.

    Raises:
        ValueError: for a value out of range.
        TypeError: for a value of the wrong type.

    Example:

    ```python
    healing = kt.callbacks.SelfHealing(snapshot_every=10)
    model.fit(x, y, epochs=10, callbacks=[healing, kt.callbacks.CurveDiagnostics()])
    for entry in healing.interventions:
        print(entry["step"], entry["seen"]["kind"], entry["learning_rate"])
    ```

    References:
        - [Chowdhery et al., 2022](https://arxiv.org/abs/2204.02311), "PaLM:
          Scaling Language Modeling with Pathways", Section 5.1 (restart
          before a loss spike and skip the batches around it).
    """

    def __init__(
        self,
        snapshot_every=10,
        factor=0.2,
        max_attempts=5,
        attempt_window=3,
        spike_threshold=10.0,
        divergence=0.5,
        window=50,
        min_steps=20,
        backup_dir=None,
        verbose=0,
    ):
        super().__init__()
        self.snapshot_every = _common.check_int("snapshot_every", snapshot_every, 1)
        if not _common.is_real(factor) or not 0.0 < float(factor) < 1.0:
            raise ValueError(
                "Argument `factor` must be a float in (0, 1): an escalated "
                f"rollback multiplies the learning rate by it. Received: factor={factor}"
            )
        self.factor = float(factor)
        self.max_attempts = _common.check_int("max_attempts", max_attempts, 1)
        self.attempt_window = _common.check_int("attempt_window", attempt_window, 1)
        self.spike_threshold = _common.check_float("spike_threshold", spike_threshold)
        if self.spike_threshold <= 0:
            raise ValueError(
                f"Argument `spike_threshold` must be > 0. Received: spike_threshold={spike_threshold}"
            )
        self.divergence = _common.check_float("divergence", divergence, maximum=1.0)
        if self.divergence <= 0:
            raise ValueError(
                f"Argument `divergence` must be in (0, 1]. Received: divergence={divergence}"
            )
        self.window = _common.check_int("window", window, 10)
        self.min_steps = _common.check_int("min_steps", min_steps, 10)
        self.backup_dir = _common.check_backup_dir(backup_dir)
        self.verbose = _common.check_int("verbose", verbose, 0)
        self._state_file = _common.StateFile(self.backup_dir, "self_healing")
        self.interventions = []
        self.scaled = None  # the `kt.schedules.Scaled` member of the rate program
        self._log = None

    def get_config(self):
        return {
            "snapshot_every": self.snapshot_every,
            "factor": self.factor,
            "max_attempts": self.max_attempts,
            "attempt_window": self.attempt_window,
            "spike_threshold": self.spike_threshold,
            "divergence": self.divergence,
            "window": self.window,
            "min_steps": self.min_steps,
            "backup_dir": self.backup_dir,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # --- the rate multiplier -------------------------------------------
    @property
    def multiplier(self):
        """The factor this callback put on the optimizer's rate (1.0 before any reduction)."""
        return 1.0 if self.scaled is None else self.scaled.multiplier

    def set_params(self, params):
        super().set_params(params)
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._install()

    def _install(self):
        program = _rate.RateProgram.of(self.model, self)
        adopted = program.adopt(_KIND)  # from a checkpoint written mid-training
        multiplier = 1.0 if adopted is None else adopted.multiplier

        def factory(inner):
            return Scaled(inner, multiplier=multiplier, name=_rate.MARK + _KIND)

        self.scaled = program.register(self, factory, "SelfHealing", per_step=False)
        self._program = program

    def _set_multiplier(self, value):
        if self.scaled.multiplier != value:
            self.scaled.multiplier = value
            if self._program.variable is None and Scaled.needs_retrace():
                _rate.retrace(self.model)
        self._program.sync(self.model)  # a float rate: assign it

    # --- fit --------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if _keras_compat.loss_tracker_variables(self.model) is None:
            raise ValueError(
                "`SelfHealing` reads the training loss from Keras's loss tracker, "
                "which this model does not have (not compiled with a loss, or a "
                "custom `train_step` that does not update it). Received: "
                f"model={self.model.name!r}"
            )
        self._install()  # again, after callbacks that replace the rate in `set_params`
        self._begin_fit()
        _build_optimizer(self.model)  # its slots are part of every snapshot
        self._state = _make_state(self.model)
        self._detector = _Detector(self.window, self.min_steps, self.spike_threshold,
                                   self.divergence)
        self._log = InterventionLog.start(self.model)
        self.interventions = []
        self._snapshots = []
        self._step = 0  # steps run in this fit
        self._since_snapshot = 0
        self._chain = 0
        self._last_rollback = None
        self._last_restored = None
        self._epoch = 0
        self._epoch_count = 0
        self._give_up = None
        self._program.sync(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_resume(epoch)
        self._epoch = epoch
        self._epoch_count = 0
        self._last_logs = {}

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = batch
        if not self._snapshots:  # after every `on_train_begin` (BackupAndRestore's too)
            self._snapshot(batch - 1)
        # Read here, not kept from the last step: whatever ran in between
        # (Keras's reset at an epoch's start, an `evaluate`) is not counted.
        self._previous = self._state.tracker()

    def on_train_batch_end(self, batch, logs=None):
        steps = batch - self._begin + 1
        self._step += steps
        total, count, finite = self._state.observe()
        loss = None  # no example counted: nothing to judge the loss by
        if count > self._previous[1]:
            loss = (total - self._previous[0]) / (count - self._previous[1])
        if loss is not None and not math.isfinite(loss):
            fault = {"kind": "non_finite_loss", "loss": loss}
        elif not finite:  # a non-finite gradient (a NaN behind a ReLU leaves the loss finite)
            fault = {"kind": "non_finite_weights", "loss": loss}
        else:
            fault = None if loss is None else self._detector.check(loss)
        if fault is not None:
            self._heal(fault, batch, logs)
            return
        if loss is not None:
            self._detector.accept(loss)
            after = self._snapshots[-1]["after"]
            if len(after) < _Detector.LEVEL:  # the losses that tell how good the snapshot was
                after.append(loss)
        if logs is not None:
            self._last_logs = dict(logs)
        if self._last_rollback is not None and self._step - self._last_rollback > self.attempt_window:
            self._chain = 0  # the healing held
        self._since_snapshot += steps
        if self._since_snapshot >= self.snapshot_every:
            self._snapshot(batch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["interventions"] = self._epoch_count
            # Unless a rate callback wrote it (PlateauDecay: before its reduction).
            logs.setdefault("learning_rate", self._program.current_rate())
        if self.backup_dir is not None:
            self._state_file.save(epoch + 1, self._saved_state())

    def on_train_end(self, logs=None):
        self._resume_if_no_epoch_ran()
        self._program.release(self)
        if self._log is not None:
            self._log.active = False
        self._state = None
        self._snapshots = []
        if self._give_up is not None:
            error, self._give_up = self._give_up, None
            self._log.give_up()  # `CurveDiagnostics` listed after this callback reports first
            raise error

    # --- snapshots --------------------------------------------------------
    def _snapshot(self, batch):
        used = {s["slot"] for s in self._snapshots}
        if len(self._snapshots) >= _SLOTS:
            best = self._best()
            evict = next(s for s in self._snapshots if s is not best)  # the oldest other
            self._snapshots.remove(evict)
            used.discard(evict["slot"])
        slot = next(i for i in range(_SLOTS) if i not in used)
        self._state.save(slot)
        self._snapshots.append({
            "slot": slot, "step": self._step, "epoch": self._epoch, "batch": int(batch),
            "after": [], "detector": self._detector.get_state(),
            "iteration": _iterations(self.model),
        })
        self._since_snapshot = 0

    def _best(self):
        """The snapshot whose next steps had the lowest loss (the median of up
        to 10): a snapshot is judged by the steps that started from it."""
        def level(s):
            return float(np.median(s["after"])) if s["after"] else math.inf

        return min(self._snapshots, key=lambda s: (level(s), -s["step"]))

    def _target(self, fault):
        """The snapshot to restore for this attempt."""
        if fault["kind"] == "diverging":
            return self._best()
        if self._chain <= 1 or self._last_restored is None:
            return self._snapshots[-1]
        older = [s for s in self._snapshots if s["step"] < self._last_restored]
        return older[-1] if older else self._snapshots[0]

    # --- healing ------------------------------------------------------------
    def _heal(self, fault, batch, logs):
        recent = self._last_rollback is not None and self._step - self._last_rollback <= self.attempt_window
        self._chain = self._chain + 1 if recent else 1
        rate_before = self._program.current_rate()
        entry = {
            "step": self._step, "epoch": self._epoch, "batch": int(batch),
            "iteration": _iterations(self.model), "attempt": self._chain,
            "seen": {k: _plain(v) for k, v in fault.items()},
        }
        if self._chain > self.max_attempts:
            self._stop(entry, batch, rate_before, logs)
            return
        target = self._target(fault)
        self._restore(target, logs)
        if fault["kind"] == "diverging" or self._chain >= 3:
            self._set_multiplier(self.multiplier * self.factor)
        entry.update(
            action="rolled_back",
            restored={k: target[k] for k in ("step", "epoch", "batch", "iteration")},
            skipped_batches=int(self._step - target["step"]),
            learning_rate={"before": rate_before, "after": self._program.current_rate()},
        )
        self._record(entry)
        self._last_rollback = self._step
        self._last_restored = target["step"]

    def _restore(self, target, logs):
        """Puts the snapshot back; the snapshots after it are dropped."""
        same_epoch = target["epoch"] == self._epoch
        self._state.restore(target["slot"])  # the metrics too: the epoch's running means
        if not same_epoch:
            self.model.reset_metrics()  # a snapshot of an earlier epoch: they start again
        self._detector.set_state(target["detector"])
        self._snapshots = [s for s in self._snapshots if s["step"] <= target["step"]]
        self._since_snapshot = 0
        self._program.sync(self.model)  # a float rate: the rate of the restored step
        if logs is not None:
            repaired = _metric_logs(self.model) if same_epoch else {}
            logs.update(repaired or self._last_logs)

    def _stop(self, entry, batch, rate_before, logs):
        newest = self._snapshots[-1]
        self._restore(newest, logs)  # leave finite weights
        entry.update(action="gave_up", restored={k: newest[k] for k in ("step", "epoch", "batch", "iteration")},
                     skipped_batches=int(self._step - newest["step"]),
                     learning_rate={"before": rate_before, "after": self._program.current_rate()})
        self._record(entry)
        self.model.stop_training = True
        lines = "\n".join(f"  {describe(e)}" for e in self.interventions)
        self._give_up = SelfHealingError(
            f"SelfHealing gave up: the fault came back {self.max_attempts} times in a row, "
            f"each within {self.attempt_window} steps of the previous rollback. The model holds "
            f"the snapshot of step {newest['step']}. Interventions:\n{lines}\n"
            "Lower the learning rate, check the data for non-finite or extreme values, "
            "or clip gradients. Received: "
            f"max_attempts={self.max_attempts}, attempt_window={self.attempt_window}"
        )

    def _record(self, entry):
        self.interventions.append(entry)
        self._log.add(entry)
        self._epoch_count += 1
        if self.verbose:
            print(f"\nSelfHealing: {describe(entry)}")

    # --- resuming ---------------------------------------------------------
    def _saved_state(self):
        return {"multiplier": self.multiplier, "interventions": self.interventions,
                "detector": self._detector.get_state()}

    def _restore_state(self, state, arrays):
        self.interventions = list(state["interventions"])
        for entry in self.interventions:
            self._log.add(entry)
        self._detector.set_state(state["detector"])
        self._set_multiplier(state["multiplier"])
        self._snapshots = []  # the resumed state, at the next step


# ------------------------------------------------------------------ detection


class _Detector:
    """The spike and divergence rules over the healthy steps' losses."""

    LEVEL = 10  # steps in the divergence level (a median) and in the start level
    START = 2.0  # a spike is also above this multiple of the run's starting level

    def __init__(self, window, min_steps, spike_threshold, divergence):
        self.window = window
        self.min_steps = min_steps
        self.spike_threshold = spike_threshold
        self.divergence = divergence
        self.set_state({"recent": [], "first": [], "best": math.inf, "seen": 0})

    def get_state(self):
        return {"recent": list(self.recent), "first": list(self.first),
                "best": self.best, "seen": self.seen}

    def set_state(self, state):
        self.recent = collections.deque(state["recent"], maxlen=self.window)
        self.first = list(state["first"])
        self.best = float(state["best"])
        self.seen = int(state["seen"])

    def level(self):
        """The median of the last `LEVEL` healthy losses."""
        last = list(self.recent)[-self.LEVEL:]
        return float(np.median(last)) if last else math.inf

    def spike_threshold_for_next(self):
        """`(threshold, median)` of the spike rule."""
        recent = np.asarray(self.recent)
        median = float(np.median(recent))
        spread = max(float(np.quantile(recent, 0.9)) - median, 0.1 * abs(median))
        start = float(np.median(self.first))
        return max(median + self.spike_threshold * spread, self.START * start), median

    def divergence_of(self, loss):
        """`(current level, threshold)` of the divergence rule with `loss` added."""
        current = float(np.median(list(self.recent)[-(self.LEVEL - 1):] + [loss]))
        start = float(np.median(self.first))
        if not start > self.best:
            return current, math.inf
        threshold = self.best + self.divergence * (start - self.best)
        return current, threshold if self.best <= 0 else max(threshold, 2 * self.best)

    def check(self, loss):
        """A fault dict, or `None` when `loss` is healthy."""
        if self.seen < self.min_steps:
            return None
        threshold, median = self.spike_threshold_for_next()
        if loss > threshold:
            return {"kind": "spike", "loss": loss, "level": median, "threshold": threshold}
        current, threshold = self.divergence_of(loss)
        if current > threshold:
            return {"kind": "diverging", "loss": current, "level": self.best, "threshold": threshold}
        return None

    def accept(self, loss):
        self.recent.append(loss)
        self.seen += 1
        if len(self.first) < self.LEVEL:
            self.first.append(loss)
        if self.seen >= self.LEVEL:
            self.best = min(self.best, self.level())


# ------------------------------------------------------------------ state copies


def _build_optimizer(model):
    """Creates the optimizer's slots now (Keras does it in the first step)."""
    optimizer = model.optimizer
    if optimizer.built:
        return
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        optimizer.build(model.trainable_variables)
        return
    with strategy.scope():
        optimizer.build(model.trainable_variables)


def _iterations(model):
    return int(np.asarray(keras.ops.convert_to_numpy(model.optimizer.iterations)))


def _plain(value):
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def _metric_logs(model):
    """The model's current metric results as floats (the running means)."""
    out = {}
    for name, value in model.get_metrics_result().items():
        try:
            out[name] = float(np.asarray(keras.ops.convert_to_numpy(value)))
        except (TypeError, ValueError):
            continue
    return out


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _make_state(model):
    if keras.backend.backend() == "tensorflow":
        return _TensorFlowState(model)
    if keras.backend.backend() == "jax":
        return _JaxState(model)
    raise ValueError(
        "`SelfHealing` runs on the TensorFlow and JAX backends. "
        f"Received: backend={keras.backend.backend()!r}"
    )


class _State:
    """The variables a snapshot holds, and the ones the finite check reads."""

    def __init__(self, model):
        self.model = model
        self.state = _unique(
            list(model.trainable_variables) + list(model.non_trainable_variables)
            + list(model.optimizer.variables)
        )
        self.metrics = _unique(model.metrics_variables)
        self.checked = [
            v for v in _unique(list(model.trainable_variables) + list(model.non_trainable_variables))
            if "float" in str(v.dtype)
        ]
        self.total, self.count = _keras_compat.loss_tracker_variables(model)


class _TensorFlowState(_State):
    """Copies in device variables, each copy and check one traced call.

    The copies are plain variables on the default device (one per worker):
    a snapshot reads the mirrored weights in the cross-replica context (the
    same on every replica) and the metrics summed over the replicas; a
    restore assigns every replica.
    """

    def __init__(self, model):
        super().__init__(model)
        import tensorflow as tf

        self.tf = tf
        self.slots = {}
        self._save = None
        total, count, checked = self.total, self.count, self.checked

        def tracker():
            return tf.stack([tf.cast(tf.convert_to_tensor(total), "float64"),
                             tf.cast(tf.convert_to_tensor(count), "float64")])

        def observe():
            flags = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))) for v in checked]
            finite = tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)
            return tf.concat([tracker(), [tf.cast(finite, "float64")]], axis=0)

        self._observe = tf.function(observe, autograph=False)
        self._tracker = tf.function(tracker, autograph=False)

    def observe(self):
        total, count, finite = self._observe().numpy()
        return float(total), float(count), bool(finite)

    def tracker(self):
        total, count = self._tracker().numpy()
        return float(total), float(count)

    def _copies(self, slot):
        if slot not in self.slots:
            tf = self.tf
            with tf.init_scope():
                self.slots[slot] = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                                    for v in self.state + self.metrics]
        return self.slots[slot]

    def _traced(self):
        """One traced save and one restore, the slot's copies passed in (no retrace per slot)."""
        if self._save is None:
            tf = self.tf
            variables = self.state + self.metrics

            def save(copies):
                for v, c in zip(variables, copies):
                    c.assign(tf.convert_to_tensor(v))

            def restore(copies):
                for v, c in zip(variables, copies):
                    v.assign(c.read_value())

            self._save = tf.function(save, autograph=False)
            self._restore = tf.function(restore, autograph=False)
        return self._save, self._restore

    def save(self, slot):
        self._traced()[0](self._copies(slot))

    def restore(self, slot):
        self._traced()[1](self._copies(slot))


class _JaxState(_State):
    """Copies of the JAX arrays (the train step donates its inputs' buffers)."""

    def __init__(self, model):
        super().__init__(model)
        import jax
        import jax.numpy as jnp

        self.jnp = jnp
        self.slots = {}
        self._finite = jax.jit(
            lambda values: jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in values]))
            if values else jnp.asarray(True)
        )

    def observe(self):
        total_count = self.tracker()  # syncs the state
        return total_count + (bool(self._finite([v.value for v in self.checked])),)

    def tracker(self):
        self.model.jax_state_sync()
        return float(np.asarray(self.total.value)), float(np.asarray(self.count.value))

    def save(self, slot):
        self.model.jax_state_sync()
        self.slots[slot] = [self.jnp.array(v.value, copy=True) for v in self.state + self.metrics]

    def restore(self, slot):
        self.model.jax_state_sync()
        for v, value in zip(self.state + self.metrics, self.slots[slot]):
            v.assign(self.jnp.array(value, copy=True))


__all__ = ["SelfHealing", "SelfHealingError"]
