"""`check`: Karpathy's "Recipe" sanity checks, run before the first epoch.

Every check works on a sample of the data, read in the order `fit` will feed
it (`kerastoolkit.preflight.data`), and on one *copy* of the model
(`keras.models.clone_model` with the same weights): the user's model,
weights, optimizer state, data and random state are left bit-identical.
Each problem found is a `Finding` (the same shape as the curve diagnosis)
with its evidence and what to do.

| code | check (default thresholds) |
| --- | --- |
| `non_finite_inputs` | a NaN or Inf in the inputs |
| `input_scale` | what the first layer with weights receives is far from standardized: `std > 5` or `|mean| > 5` (raw 0–255 pixels and no `Rescaling`/`Normalization` in front) |
| `constant_input` | more than half of the input features constant over the sample |
| `labels_out_of_range` | sparse labels outside `[0, C)` or not integers |
| `label_format` | one-hot labels with a sparse loss, or sparse labels with a one-hot loss |
| `logits_mismatch` | `from_logits=True` on outputs that are already probabilities (rows sum to 1), or `from_logits=False` on outputs outside `[0, 1]` |
| `single_class` / `class_imbalance` | one class in the labels / largest class ≥ 10× the smallest |
| `data_order` | in the order `fit` uses, the first batches' mean labels spread > 4× as much as random batches' (not checked for arrays `fit` shuffles) |
| `init_loss` | loss at initialisation above `1.5·ln C + 0.5` |
| `optimizer_nan` / `optimizer_explodes` / `optimizer_rises` / `optimizer_flat` | a copy compiled with a copy of the model's own optimizer, trained 12 steps on the first batches, does not lower their loss (see `kerastoolkit.preflight.trial`) |
| `cannot_overfit` | a copy trained on one batch of 16 for up to 150 steps (the model's optimizer, then Adam) stays above `floor + 0.1·(chance − floor)`, `floor` the lowest loss the loss allows (the smoothed targets' entropy under label smoothing, else 0) |
| `ignores_input` | that copy does as well on the batch with its inputs zeroed (its last loss on the real inputs > 0.5× its loss on zeros) |
| `no_signal` | after the optimizer trial (or, when that is too slow to tell, 60 more steps, then 60 Adam steps), the loss on held-back examples is neither below `floor + 0.9·(chance − floor)` nor below `chance` by two standard errors of its estimate (one-sided: labels that do not match the inputs leave it above chance) |
| `dead_gradients` | a trainable variable with no gradient, an all-zero or a non-finite one |
| `dead_relu` / `exploding_activations` / `vanishing_activations` | at initialisation, as in the curve diagnosis |
| `lr_suggestion` | (`lr_range_test=True`, or a failed optimizer trial) the LR range test's suggestion for the model's optimizer |
"""

import math
import random as _random
import time
import warnings

import keras
import numpy as np

from kerastoolkit.diagnostics import statistics as stats_lib
from kerastoolkit.diagnostics.report import Report
from kerastoolkit.diagnostics.report import merged_thresholds
from kerastoolkit.preflight import data as data_lib
from kerastoolkit.preflight import rules
from kerastoolkit.preflight import trial as trial_lib
from kerastoolkit.preflight.codes import ADVICE  # noqa: F401  (public: kt.preflight.ADVICE)
from kerastoolkit.preflight.codes import PREFLIGHT_CODES  # noqa: F401
from kerastoolkit.preflight.codes import finding
from kerastoolkit.preflight.copies import Copy

DEFAULT_THRESHOLDS = {
    "input_std": 5.0,
    "input_mean": 5.0,
    "constant_fraction": 0.5,
    "imbalance_ratio": 10.0,
    "order_batches": 20,
    "order_ratio": 4.0,
    "init_loss_factor": 1.5,
    "init_loss_margin": 0.5,
    "overfit_fraction": 0.1,
    "ignores_input_ratio": 0.5,
    "signal_fraction": 0.9,
    "trial_explode": 3.0,
    "trial_rise": 0.05,
    "trial_flat": 0.002,
    # The activation statistics' own thresholds, with a dead-ReLU fraction
    # for a network at initialization.
    **stats_lib.DEFAULT_THRESHOLDS,
    "dead_relu_fraction": 0.9,
}


class PreflightReport(Report):
    """A `Report` of preflight findings; `str()` says "Preflight"."""

    def __init__(self, findings, notes=None, seconds=None, checks=None):
        super().__init__(findings, notes=notes)
        self.seconds = seconds
        self.checks = list(checks or [])
        self.timings = {}

    def __str__(self):
        head = f"Preflight ({len(self.checks)} checks"
        if self.seconds is not None:
            head += f", {self.seconds:.1f} s"
        head += ")"
        return self._format(head)

    def to_dict(self):
        data = super().to_dict()
        for key in ("epochs", "steps", "steps_per_epoch"):
            data.pop(key, None)
        data["checks"] = self.checks
        data["seconds"] = self.seconds
        return data

    @property
    def errors(self):
        return [f for f in self.findings if f.severity == "error"]


class _RandomState:
    """Saves and restores Python's, NumPy's and Keras's global random state."""

    def __enter__(self):
        from kerastoolkit import _keras_compat

        self._py = _random.getstate()
        self._np = np.random.get_state()
        self._keras = _keras_compat.global_seed_state()
        return self

    def __exit__(self, *exc):
        from kerastoolkit import _keras_compat

        _random.setstate(self._py)
        np.random.set_state(self._np)
        _keras_compat.set_global_seed_state(self._keras)
        return False


class _Timed(list):
    """The names of the checks run, with the seconds each took."""

    def __init__(self):
        super().__init__()
        self._marks = [time.perf_counter()]

    def append(self, name):
        self._marks.append(time.perf_counter())
        super().append(name)

    def timings(self):
        marks = self._marks[1:] + [time.perf_counter()]
        return {name: round(b - a, 3) for name, a, b in zip(self, marks[:-1], marks[1:])}


def check(model, data, batch_size=32, shuffle=True, num_examples=512,
          overfit_steps=150, signal_steps=60, learning_rate=3e-3, trial_steps=12,
          epochs=None, lr_range_test=False, thresholds=None):
    """Checks a model and its data before training, in seconds.

    Runs the sanity checks of Karpathy's "A Recipe for Training Neural
    Networks" (the module docstring lists each rule) on a sample of the data
    read in the order `fit` will use, training only a copy of the model: the
    model's own optimizer (copied from its config) must lower the loss of
    the first batches, and, with Adam as a reference, the model must
    memorize one batch and learn something that holds on held-back examples.

    Args:
        model: a compiled Keras model (functional or `Sequential` for the
            activation statistics and the input scale seen by its first layer
            with weights).
        data: what `fit` will get: `(x, y)` arrays, a batched
            `tf.data.Dataset` (read through a copy of the pipeline), a
            `keras.utils.PyDataset`, or a function returning a fresh
            iterable of `(x, y)` batches. A generator object is refused:
            reading it would take batches from `fit`.
        batch_size: `fit`'s batch size for arrays (datasets bring their
            own). Defaults to `32` (`fit`'s).
        shuffle: how `fit` orders arrays and `PyDataset` batches, as `fit`'s
            own argument: `True` (a new permutation each epoch: the order
            check is skipped), `"batch"` or `False`. Ignored for other data,
            as by `fit`. Defaults to `True` (`fit`'s).
        num_examples: examples for the data checks; the optimizer trial
            reads `trial_steps` batches more. Defaults to `512`.
        overfit_steps: most steps of the one-batch overfit. Defaults to `150`.
        signal_steps: Adam steps of the learnable-signal check when the
            model's own optimizer is too slow to tell. Defaults to `60`.
        learning_rate: the reference Adam's rate. Defaults to `3e-3`.
        trial_steps: steps of the optimizer trial. Defaults to `12`.
        epochs: the epochs `fit` will run, to read a schedule over the whole
            run (a rate that stays 0 for all of it). Defaults to `None`: 100
            epochs' worth of steps.
        lr_range_test: also run the LR range test for the model's optimizer.
            Defaults to `False` (it runs anyway when the trial fails).
        thresholds: dict overriding entries of `DEFAULT_THRESHOLDS`.
            Defaults to `None`.

    Returns:
        A `PreflightReport` (`str()` in words, `to_json()`, `.errors`,
        `.timings`).

    Raises:
        ValueError: if the model is not compiled, for a generator object,
            or for bad arguments.

    Example:

    ```python
    report = kt.preflight.check(model, (x_train, y_train), batch_size=64)
    print(report)
    ```

    References:
        - Karpathy, 2019, "A Recipe for Training Neural Networks",
          http://karpathy.github.io/2019/04/25/recipe/
    """
    _validate(model, batch_size, num_examples, overfit_steps, signal_steps,
              trial_steps, epochs, learning_rate)
    data_lib.check_shuffle(shuffle)
    run = _Run(model, merged_thresholds(DEFAULT_THRESHOLDS, thresholds), dict(
        overfit_steps=overfit_steps, signal_steps=signal_steps, learning_rate=learning_rate,
        trial_steps=trial_steps, epochs=epochs, lr_range_test=lr_range_test))
    start = time.perf_counter()
    with _RandomState(), warnings.catch_warnings():
        # Keras warns about what the copies do (a missing gradient, a softmax
        # under from_logits): the findings say it in words, once.
        warnings.simplefilter("ignore")
        reading = num_examples + trial_steps * batch_size
        sample = data_lib.take(data, reading, batch_size, shuffle, np.random.default_rng(0))
        run.all(sample, batch_size if data_lib.is_arrays(data) else None, num_examples)
    report = PreflightReport(run.findings, notes=run.notes,
                             seconds=time.perf_counter() - start, checks=list(run.checks))
    report.timings = run.checks.timings()
    return report


def _validate(model, batch_size, num_examples, overfit_steps, signal_steps, trial_steps,
              epochs, learning_rate):
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "`model` must be compiled (loss and optimizer). "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    for name, value, low in (("batch_size", batch_size, 1), ("num_examples", num_examples, 8),
                             ("overfit_steps", overfit_steps, 1),
                             ("signal_steps", signal_steps, 1), ("trial_steps", trial_steps, 2),
                             ("epochs", 1 if epochs is None else epochs, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(
                f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    if not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or not (
            0 < learning_rate < math.inf):
        raise ValueError(
            f"`learning_rate` must be a positive number. Received: learning_rate={learning_rate!r}")


def _slice(x, idx):
    return keras.tree.map_structure(lambda a: a[idx], x)


def _finite(x):
    def fix(a):
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        return a

    return keras.tree.map_structure(fix, x)


class _Parts:
    """The sample cut as training uses it: the batches trained on first
    (`x`, `y`, `batches` of `batch`) and the held-back examples (`xh`, `yh`)."""

    def __init__(self, x, y, batch_size, num_examples):
        n = len(y)
        held = min(num_examples // 2, n // 2)
        self.batch = max(1, min(batch_size, n - held))
        self.batches = max(1, (n - held) // self.batch)
        end = self.batches * self.batch
        self.x, self.y = _slice(x, slice(0, end)), y[:end]
        self.xh, self.yh = _slice(x, slice(n - held, n)), y[n - held:]

    def batch_at(self, i):
        """The `i`-th batch, cycling over the batches trained on."""
        start = (i % self.batches) * self.batch
        return _slice(self.x, slice(start, start + self.batch)), self.y[start:start + self.batch]

    def example(self):
        """Two examples, enough to build what the loss creates on first use."""
        return _slice(self.x, slice(0, 2)), self.y[:2]

    def one_batch(self, unique):
        """The first `unique` examples repeated to a whole batch (the traced
        shape): `(x, y, unique)`."""
        unique = min(unique, self.batch)
        idx = np.arange(self.batch) % unique
        return _slice(self.x, idx), self.y[idx], unique


class _Run:
    """One `check` call: the checks in order, their findings and notes."""

    def __init__(self, model, t, options):
        self.model, self.t, self.o = model, t, options
        self.findings, self.notes, self.checks = [], [], _Timed()
        self.trial, self._compiled, self.floor = None, None, 0.0

    def all(self, sample, batch_size, num_examples):
        if sample.note:
            self.notes.append(sample.note)
        batch_size = batch_size or sample.batch
        x, y = _finite(sample.x), sample.y
        head = slice(0, min(len(y), num_examples))
        copy = self._data_checks(sample, x, head, batch_size)
        if copy is None:
            return
        counts, outputs = self._counts, self._outputs
        chance = rules.entropy(counts) if counts is not None else None
        if chance is None:
            self.notes.append("no class labels: the chance-level checks are skipped.")
        # With label smoothing the loss cannot go below the smoothed
        # targets' entropy: the levels below are measured from there.
        self.floor = rules.loss_floor(self.model, outputs.shape[-1] if outputs.ndim >= 2 else 2)
        self._init_loss(copy, outputs, y[:len(outputs)])
        norms = self._gradient_checks(copy, _slice(x, slice(0, 32)), y[:32])
        parts = _Parts(x, y, batch_size, num_examples)
        self._trainings(copy, parts, norms, counts, chance, sample.steps_per_epoch)

    def _data_checks(self, sample, x, head, batch_size):
        """Inputs, labels and order; the copy, or `None` when the labels do
        not fit the loss (nothing can be trained then)."""
        self.checks.append("inputs")
        copy = Copy(self.model)
        probe = _slice(x, slice(0, 128))
        seen = rules.first_weighted_inputs(copy.model, _slice(sample.x, slice(0, 128)))
        raw = _slice(sample.x, head)
        self.findings += rules.input_checks(raw, seen or [(None, f) for f in keras.tree.flatten(raw)],
                                            sample.full_x, self.t)
        kind, from_logits = rules.loss_kind(self.model)
        self._kind = kind
        self._outputs = copy.predict(probe)
        self.checks.append("labels")
        found, self._counts = rules.label_checks(sample.y[head], self._outputs, kind,
                                                 from_logits, self.t)
        self.findings += found
        if sample.order_known:
            self.checks.append("data_order")
            self.findings += rules.order_check(sample.y, batch_size, self.t)
        if any(f.code in ("labels_out_of_range", "label_format") for f in found):
            self.notes.append("labels do not fit the loss: training checks skipped.")
            return None
        return copy

    def _init_loss(self, copy, outputs, y):
        self.checks.append("init_loss")
        init = float(keras.ops.convert_to_numpy(copy.model.compute_loss(
            y=y, y_pred=keras.ops.convert_to_tensor(outputs), training=False)))
        c_out = outputs.shape[-1] if outputs.ndim >= 2 else 1
        # a uniform guess over the C outputs scores ln C whatever the labels
        uniform = {"sparse": math.log(max(c_out, 2)), "categorical": math.log(max(c_out, 2)),
                   "binary": math.log(2)}.get(self._kind)
        if uniform is not None and init > self.t["init_loss_factor"] * uniform + self.t[
                "init_loss_margin"]:
            self.findings.append(finding(
                "init_loss",
                f"The loss at initialization is {init:.4g}, against {uniform:.4g} "
                f"for a uniform guess over the {c_out} outputs (ln C).",
                {"init_loss": init, "chance": uniform}))

    def _gradient_checks(self, copy, x, y):
        """Dead gradients and activations at initialization; returns the
        gradient norms per variable (for the trial's clipping diagnosis)."""
        self.checks.append("gradients_and_activations")
        try:
            grads = stats_lib.gradients(copy.model, x, y)
        except NotImplementedError:
            return None
        variables = copy.model.trainable_variables
        dead = [(v.path, "no gradient" if g is None else
                 "non-finite gradient" if not np.all(np.isfinite(g)) else "zero gradient")
                for v, g in zip(variables, grads)
                if g is None or not np.all(np.isfinite(g)) or not np.any(g)]
        if dead:
            self.findings.append(finding(
                "dead_gradients",
                f"{len(dead)} of {len(grads)} trainable variables get no usable "
                "gradient: " + ", ".join(f"{p} ({why})" for p, why in dead[:6])
                + (" ..." if len(dead) > 6 else "") + ".",
                {"variables": {p: why for p, why in dead}}))
        self.findings += _activation_findings(copy.model, x, y, self.t)
        return [float(np.linalg.norm(g)) for g in grads if g is not None and np.all(np.isfinite(g))]

    # ------------------------------------------------------------ trainings
    #
    # Tracing the copy's train function costs far more than the few steps
    # each check takes, so every check trains at one batch shape and reuses
    # the function the optimizer trial traced: the model's own optimizer
    # memorizes the batch and learns the signal when it can. The reference
    # Adam (a second trace) is compiled only when it cannot: a failed
    # trial, or one too slow to tell.

    def _trainings(self, copy, parts, norms, counts, chance, steps_per_epoch):
        own = self._optimizer_trial(copy, parts, norms, steps_per_epoch)
        self._overfit_and_baseline(copy, parts, chance, own)
        self._signal(copy, parts, counts, own)

    def _reference(self, copy, parts):
        """Compiles the copy with the reference Adam (once)."""
        if self._compiled != "reference":
            copy.compile(keras.optimizers.Adam(self.o["learning_rate"]), parts.example())
            self._compiled = "reference"
        copy.reset()

    def _optimizer_trial(self, copy, parts, norms, steps_per_epoch):
        """The model's own optimizer, `trial_steps` steps on the first batches;
        returns whether it lowered the loss."""
        self.checks.append("optimizer_trial")
        original = self.model.optimizer
        try:
            plan = trial_lib.Plan(original, steps_per_epoch, self.o["epochs"])
            optimizer = copy.compile(trial_lib.copy_optimizer(original), parts.example())
        except (ValueError, TypeError, AttributeError) as error:
            self.notes.append(f"the model's optimizer could not be tried: {error}.")
            return False
        self._compiled = "own"
        if trial_lib.copy_state(original, optimizer):
            copy.snapshot_optimizer()  # a model trained before continues from there
        plan.install(optimizer)
        # The loss of the first examples trained on, before and after (the
        # same random draws: only the weights differ), and of held-back ones.
        seen, held = min(64, len(parts.y)), min(128, len(parts.yh))
        xs, ys = _slice(parts.x, slice(0, seen)), parts.y[:seen]
        before = copy.loss_of(xs, ys)
        losses = []
        for i in range(self.o["trial_steps"]):
            losses.append(copy.train(*parts.batch_at(i)))
            if not math.isfinite(losses[-1]):
                break
        after = copy.loss_of(xs, ys)
        held_after = copy.loss_of(_slice(parts.xh, slice(0, held)), parts.yh[:held]) if held else math.inf
        kind = trial_lib.verdict(before, after, losses, self.t)
        self.trial = {"kind": kind, "held_after": held_after, "steps": len(losses)}
        suggestion = None
        if kind is not None or self.o["lr_range_test"]:
            suggestion = self._suggest(copy, parts, plan, kind, optimizer, norms)
        if kind is not None:
            self.findings.append(_trial_finding(kind, plan, parts, losses, before, after,
                                                optimizer, norms, suggestion))
        return kind is None

    def _suggest(self, copy, parts, plan, kind, optimizer, norms):
        """The LR range test on the copy with the model's optimizer, or `None`
        (when clipping, not the rate, stops the updates)."""
        if kind == "flat" and not plan.zero and trial_lib.causes(kind, plan, optimizer, norms):
            return None
        from kerastoolkit.diagnostics.lr_finder import find_learning_rate

        self.checks.append("lr_range_test")
        copy.reset()
        steps = max(20, min(100, 3 * self.o["trial_steps"]))
        batches = (parts.batch_at(i) for i in range(steps))
        try:
            finder = find_learning_rate(copy.model, batches, min_lr=1e-7, max_lr=10.0,
                                        num_steps=steps)
            rate = float(finder.suggestion)
        except ValueError as error:
            self.notes.append(f"LR range test: {error}")
            return None
        if self.o["lr_range_test"]:
            self.findings.append(finding(
                "lr_suggestion",
                f"The LR range test suggests {rate:.3g} (steepest {finder.steepest:.3g}) "
                f"for {plan.name}.",
                {"suggestion": rate, "steepest": float(finder.steepest), "optimizer": plan.name}))
        return rate

    def _overfit(self, copy, xb, yb, target):
        loss, steps = math.nan, 0
        for steps in range(1, self.o["overfit_steps"] + 1):
            loss = copy.train(xb, yb)
            if not math.isfinite(loss) or loss < target:
                break
        return loss, steps

    def _overfit_and_baseline(self, copy, parts, chance, own):
        """One batch of 16 memorized (by the model's optimizer, else Adam);
        zeroing its inputs must then hurt."""
        self.checks.append("overfit_one_batch")
        xb, yb, unique = parts.one_batch(16)
        scale = chance - self.floor if chance is not None else 1.0
        fraction = self.t["overfit_fraction"]
        target, limit = self.floor + 0.5 * fraction * scale, self.floor + fraction * scale
        loss, steps, by = math.nan, 0, "the model's optimizer"
        if own:
            copy.reset()
            loss, steps = self._overfit(copy, xb, yb, target)
        if not loss < limit:
            self._reference(copy, parts)
            loss, steps = self._overfit(copy, xb, yb, target)
            by = "Adam"
        self._baseline(copy, _slice(xb, slice(0, unique)), yb[:unique], loss)
        if chance is not None and not loss < limit:
            floor = f", lowest possible {self.floor:.4g}" if self.floor else ""
            self.findings.append(finding(
                "cannot_overfit",
                f"Trained for {steps} {by} steps on one batch of {unique}, a copy of the "
                f"model only reached a loss of {loss:.4g} (chance {chance:.4g}{floor}).",
                {"loss": loss, "chance": chance, "floor": self.floor, "steps": steps,
                 "batch": unique}))

    def _baseline(self, copy, xu, yu, real):
        """The copy that trained on the batch (its last loss `real`), fed the
        batch with its inputs zeroed, must do worse."""
        self.checks.append("input_independent_baseline")
        zero = copy.loss_of(keras.tree.map_structure(np.zeros_like, xu), yu)
        if math.isfinite(real) and math.isfinite(zero) and real > self.t[
                "ignores_input_ratio"] * zero:
            self.findings.append(finding(
                "ignores_input",
                f"A copy trained on one batch has a loss of {real:.4g} on it, and "
                f"{zero:.4g} with the inputs zeroed: the inputs do not help.",
                {"real_inputs_loss": real, "zero_inputs_loss": zero}))

    def _signal(self, copy, parts, counts, own):
        """The loss on held-back examples must fall below the chance level:
        below `floor + 0.9·(chance − floor)`, or by more than two standard
        errors of its estimate (a slow learner is still learning)."""
        if counts is None or len(parts.yh) < 32:
            return
        self.checks.append("learnable_signal")
        chance = rules.entropy(rules.counts_like(parts.yh, counts))
        limit = self.floor + self.t["signal_fraction"] * (chance - self.floor)
        if own and self.trial["held_after"] < limit:
            return  # the optimizer trial already shows it
        steps, held, error, by = self.o["signal_steps"], math.inf, math.inf, "Adam"
        for compiled in (("own",) if own and self._compiled == "own" else ()) + ("reference",):
            if compiled == "reference":
                self._reference(copy, parts)
                by = "Adam"
            else:
                copy.reset()
                by = "the model's optimizer"
            for i in range(steps):
                copy.train(*parts.batch_at(i))
            held, error = copy.loss_with_error(parts.xh, parts.yh)
            if held < limit or held < chance - 2 * error:
                return
        self.findings.append(finding(
            "no_signal",
            f"After {steps} steps ({by}) on the first {len(parts.y)} examples, the "
            f"loss on {len(parts.yh)} held-back examples is {held:.4g} (± {error:.2g}), "
            f"not below the chance level {chance:.4g}.",
            {"held_back_loss": held, "standard_error": error, "chance": chance,
             "steps": steps}))


class _EagerStatistics(stats_lib.StatisticsRecorder):
    """The activation statistics in one eager pass: tracing a function for a
    single call costs more than the call (and a new one per check retraces)."""

    def _compiled(self, name, fn):
        return fn()


def _activation_findings(model, x, y, t):
    try:
        recorder = _EagerStatistics(model, (x, y))
        stds, dead = recorder.activations()
    except (ValueError, NotImplementedError):
        return []
    record = {"step": 0, "activation_std": stds, "dead_fraction": dead,
              "gradient_rms": [None] * len(stds), "update_ratio": None}
    statistics = dict(recorder.metadata(), records=[record])
    found = []
    for f in stats_lib.detect(statistics, t):
        if f.code in ("dead_relu", "vanishing_activations", "exploding_activations"):
            f.message = "At initialization: " + f.message
            found.append(f)
    return found


_VERDICT = {"nan": "optimizer_nan", "explodes": "optimizer_explodes",
            "rises": "optimizer_rises", "flat": "optimizer_flat"}


def _trial_finding(kind, plan, parts, losses, before, after, optimizer, norms, suggestion):
    code = _VERDICT[kind]
    losses = np.asarray(losses, "float64")
    what = {"nan": "became NaN/Inf", "explodes": "exploded", "rises": "rose",
            "flat": "did not move"}[kind]
    message = (f"Compiled as the model is ({plan.describe()}), a copy trained "
               f"{len(losses)} steps on the first batches of {parts.batch}: the loss of "
               f"the examples it trained on {what}, {before:.4g} -> {after:.4g}")
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        message += f" (NaN/Inf at step {int(bad[0])})"
    elif kind == "explodes":
        message += f" (up to {losses.max():.4g} at step {int(np.argmax(losses))})"
    message += "."
    causes = trial_lib.causes(kind, plan, optimizer, norms)
    advice = ADVICE[code]
    if causes:
        advice += " Here: " + "; ".join(causes) + "."
    if suggestion is not None:
        advice += (f" The LR range test suggests {suggestion:.3g} for {plan.name}: "
                   f"`kt.callbacks.find_learning_rate(model, x, y, batch_size={parts.batch})"
                   ".suggestion`.")
    evidence = {"optimizer": plan.name, "learning_rate": plan.rate, "schedule": plan.schedule,
                "peak_rate": plan.peak, "warmup_offset": plan.offset, "loss_before": before,
                "loss_after": after, "step_losses": losses.tolist(),
                "rates": plan.rates(optimizer, len(losses)), "causes": causes,
                "suggested_learning_rate": suggestion}
    return finding(code, message, evidence, advice=advice)
