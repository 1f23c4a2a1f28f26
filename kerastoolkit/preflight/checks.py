"""`check`: Karpathy's "Recipe" sanity checks, run before the first epoch.

Every check works on a sample of the data and on a *copy* of the model
(`keras.models.clone_model` with the same weights, its own optimizer): the
user's model, weights, optimizer state and random state are left
bit-identical. Each problem found is a `Finding` (the same shape as the curve
diagnosis) with its evidence and what to do.

| code | check (default thresholds) |
| --- | --- |
| `non_finite_inputs` | a NaN or Inf in the inputs |
| `input_scale` | inputs far from standardized: overall `std > 5` or `|mean| > 5` (raw 0–255 pixels) |
| `constant_input` | more than half of the input features constant over the sample |
| `labels_out_of_range` | sparse labels outside `[0, C)` or not integers |
| `label_format` | one-hot labels with a sparse loss, or sparse labels with a one-hot loss |
| `logits_mismatch` | `from_logits=True` on outputs that are already probabilities (rows sum to 1), or `from_logits=False` on outputs outside `[0, 1]` |
| `single_class` / `class_imbalance` | one class in the labels / largest class ≥ 10× the smallest |
| `data_order` | the first batches' mean labels spread > 4× as much as random batches' |
| `init_loss` | loss at initialisation above `1.5·chance + 0.5` (`chance` = the label entropy, `ln C` for balanced classes) |
| `cannot_overfit` | a copy trained on one batch of 16 for up to 150 Adam steps stays above `0.1·chance` |
| `ignores_input` | trained as many steps on the same batch with zeroed inputs it does as well (loss on real inputs > 0.5× that on zeros) |
| `no_signal` | trained on half of the sample, its loss on the held-back half is not below `0.9·chance` |
| `dead_gradients` | a trainable variable with no gradient, an all-zero or a non-finite one |
| `dead_relu` / `exploding_activations` / `vanishing_activations` | at initialisation, as in the curve diagnosis |
| `lr_suggestion` | (`lr_range_test=True`) the LR range test's suggestion, for information |
"""

import math
import random as _random
import time

import numpy as np

import keras

from kerastoolkit.diagnostics import statistics as stats_lib
from kerastoolkit.diagnostics.report import Finding
from kerastoolkit.diagnostics.report import Report
from kerastoolkit.diagnostics.report import merged_thresholds

#: Severity of every preflight code (registered with the diagnostics codes).
PREFLIGHT_CODES = {
    "non_finite_inputs": "error",
    "input_scale": "warning",
    "constant_input": "error",
    "labels_out_of_range": "error",
    "label_format": "error",
    "logits_mismatch": "error",
    "single_class": "error",
    "class_imbalance": "warning",
    "data_order": "error",
    "init_loss": "warning",
    "cannot_overfit": "error",
    "ignores_input": "error",
    "no_signal": "error",
    "dead_gradients": "error",
    "lr_suggestion": "info",
}

ADVICE = {
    "non_finite_inputs": "Remove or impute the NaN/Inf values before training: "
    "one NaN example turns the first layer's weights into NaN (and behind ReLU "
    "the loss stays finite, at the chance level).",
    "input_scale": "Standardize the inputs (subtract the training mean, divide "
    "by the std; or scale 0-255 pixels to [0, 1]), e.g. with a "
    "`keras.layers.Normalization` layer adapted on the training set.",
    "constant_input": "Most input features never change: the inputs are not "
    "what you think (a wrong column, a blank image, a broken loader).",
    "labels_out_of_range": "Sparse labels must be integers in [0, C) with C "
    "the number of outputs: remap them, or give the model C outputs.",
    "label_format": "Match labels and loss: integer labels with "
    "`SparseCategoricalCrossentropy`, one-hot labels with "
    "`CategoricalCrossentropy`.",
    "logits_mismatch": "Use `from_logits=True` with a linear last layer (no "
    "softmax), or a softmax/sigmoid last layer with `from_logits=False`, not "
    "a mix.",
    "single_class": "Only one class in the labels: the model can learn nothing "
    "but that class. Check the labels and the data split.",
    "class_imbalance": "Strongly imbalanced classes: set the last layer's bias "
    "to the log class priors, use class weights or resampling, and watch "
    "per-class metrics.",
    "data_order": "The data come sorted (grouped by label): shuffle them (a "
    "`tf.data` pipeline with `.shuffle(n, reshuffle_each_iteration=True)`, "
    "or `fit(..., shuffle=True)`).",
    "init_loss": "The initial loss is far above the chance level: the "
    "initialization is overconfident. Scale down the last layer (Xavier/"
    "Kaiming init), set its bias to zero or to the log class priors.",
    "cannot_overfit": "A copy of the model cannot memorize one small batch: "
    "the model, the loss or the labels are broken (check the output layer, "
    "the loss, `from_logits`, the labels).",
    "ignores_input": "The model does as well with zeroed inputs as with the "
    "real ones: it does not use its input (a disconnected branch, a "
    "`stop_gradient`, inputs overwritten in the pipeline).",
    "no_signal": "A short training does not lower the loss on held-back "
    "batches: the labels do not match the inputs (shuffled or misaligned "
    "labels, a join on the wrong key), or the inputs carry no signal.",
    "dead_gradients": "Some trainable weights get no usable gradient: a branch "
    "not connected to the loss, a `stop_gradient`, an integer cast, or "
    "NaN/Inf in the forward pass.",
    "lr_suggestion": "The learning-rate range test's suggestion (Smith 2017): "
    "a starting point, not a guarantee.",
}


class PreflightReport(Report):
    """A `Report` of preflight findings; `str()` says "Preflight"."""

    def __init__(self, findings, notes=None, seconds=None, checks=None):
        super().__init__(findings, notes=notes)
        self.seconds = seconds
        self.checks = list(checks or [])

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


def _finding(code, message, evidence):
    return Finding(code, PREFLIGHT_CODES[code], message, ADVICE[code], evidence)


# ------------------------------------------------------------------ data


def _take(data, num_examples, batch_size, shuffle, rng):
    """`(x, y)` NumPy arrays of at most `num_examples`, in training order."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        x, y = data[0], data[1]
        n = len(keras.tree.flatten(x)[0])
        if shuffle:
            idx = np.sort(rng.choice(n, size=min(n, num_examples), replace=False))
            idx = rng.permutation(idx)
        else:
            idx = np.arange(min(n, num_examples))
        take = lambda a: np.asarray(a)[idx]  # noqa: E731
        return keras.tree.map_structure(take, x), take(y)
    # a batched iterable (tf.data.Dataset, PyDataset, generator of (x, y))
    xs, ys, seen = [], [], 0
    for batch in data:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        xs.append(keras.tree.map_structure(np.asarray, x))
        ys.append(np.asarray(y))
        seen += len(ys[-1])
        if seen >= num_examples:
            break
    if not ys:
        raise ValueError("`data` yielded no batch. Received: data=<empty>")
    x = keras.tree.map_structure(lambda *a: np.concatenate(a), *xs)
    return x, np.concatenate(ys)


def _slice(x, idx):
    return keras.tree.map_structure(lambda a: a[idx], x)


# ------------------------------------------------------------------ loss kind


def _loss_kind(model):
    """`(kind, from_logits)`: kind in {"sparse", "categorical", "binary", None}."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple, dict)):
        return None, None
    name = loss if isinstance(loss, str) else type(loss).__name__
    if callable(loss) and not isinstance(loss, keras.losses.Loss):
        name = getattr(loss, "__name__", "")
    name = str(name).lower().replace("_", "")
    from_logits = bool(getattr(loss, "from_logits", False))
    if "sparsecategoricalcrossentropy" in name:
        return "sparse", from_logits
    if "categoricalcrossentropy" in name:
        return "categorical", from_logits
    if "binarycrossentropy" in name:
        return "binary", from_logits
    return None, from_logits


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# ------------------------------------------------------------------ the checks


def _input_checks(x, t, full_x=None):
    """NaN/Inf over all of `full_x` (arrays: cheap), scale and constant
    features over the sample `x`."""
    found = []
    leaves = [np.asarray(a) for a in keras.tree.flatten(x)]
    floats = [a for a in leaves if np.issubdtype(a.dtype, np.number)]
    every = [np.asarray(a) for a in keras.tree.flatten(full_x if full_x is not None else x)]
    every = [a for a in every if np.issubdtype(a.dtype, np.number)]
    bad = sum(int(np.sum(~np.isfinite(a.astype("float64")))) for a in every)
    if bad:
        rows = sorted({int(i) for a in every
                       for i in np.flatnonzero(~np.isfinite(
                           a.reshape(len(a), -1).astype("float64")).any(axis=1))})
        found.append(_finding(
            "non_finite_inputs",
            f"{bad} NaN/Inf value(s) in the inputs, in example(s) {rows[:10]}"
            f"{' ...' if len(rows) > 10 else ''}.",
            {"count": bad, "examples": rows[:50]}))
    for a in floats:
        v = a.reshape(len(a), -1).astype("float64")
        v = np.where(np.isfinite(v), v, np.nan)
        peak = float(np.nanmax(np.abs(v))) if v.size else 0.0
        std = float(np.nanstd(v)) if v.size else 0.0
        mean = float(np.nanmean(v)) if v.size else 0.0
        if std > t["input_std"] or abs(mean) > t["input_mean"]:
            found.append(_finding(
                "input_scale",
                f"The inputs are far from standardized: max |x| = {peak:.4g}, "
                f"std = {std:.4g}, mean = {float(np.nanmean(v)):.4g} (raw 0-255 "
                "pixels?).",
                {"max_abs": peak, "std": std, "mean": float(np.nanmean(v))}))
            break
    for a in floats:
        v = a.reshape(len(a), -1).astype("float64")
        if len(v) < 2:
            continue
        constant = np.nanmax(v, axis=0) - np.nanmin(v, axis=0) <= 0
        frac = float(np.mean(constant))
        if frac > t["constant_fraction"]:
            found.append(_finding(
                "constant_input",
                f"{int(constant.sum())} of {constant.size} input features "
                f"({100 * frac:.0f}%) are constant over {len(v)} examples.",
                {"constant_features": int(constant.sum()),
                 "features": int(constant.size)}))
            break
    return found


def _label_checks(y, outputs, kind, from_logits, t):
    """Label range/format/imbalance and logits checks; returns
    `(findings, class_counts or None, classes)`."""
    found = []
    y = np.asarray(y)
    probs = np.asarray(outputs, "float64")
    c_out = probs.shape[-1] if probs.ndim >= 2 else 1
    counts = None
    # label format
    one_hot = y.ndim >= 2 and y.shape[-1] > 1 and np.all((y == 0) | (y == 1)) and np.all(
        y.sum(axis=-1) == 1)
    if kind == "sparse" and y.ndim >= 2 and y.shape[-1] > 1:
        found.append(_finding(
            "label_format",
            f"The labels have shape {y.shape[1:]} (one-hot?) but the loss is a "
            "sparse categorical cross-entropy, which wants integer class ids.",
            {"label_shape": list(y.shape), "loss": "sparse"}))
    elif kind == "categorical" and (y.ndim == 1 or y.shape[-1] == 1) and c_out > 1:
        found.append(_finding(
            "label_format",
            f"The labels are class ids (shape {y.shape[1:] or '()'}) but the loss "
            "is a (one-hot) categorical cross-entropy.",
            {"label_shape": list(y.shape), "loss": "categorical"}))
    if kind == "sparse" and not (y.ndim >= 2 and y.shape[-1] > 1):
        flat = y.reshape(-1)
        integer = np.all(np.isfinite(flat)) and np.all(np.equal(np.round(flat), flat))
        low, high = float(np.min(flat)), float(np.max(flat))
        if not integer or low < 0 or high >= c_out:
            found.append(_finding(
                "labels_out_of_range",
                f"Sparse labels must be integers in [0, {c_out}) for {c_out} outputs; "
                f"they range over [{low:.4g}, {high:.4g}]"
                f"{'' if integer else ' and are not all integers'}.",
                {"min": low, "max": high, "outputs": c_out, "integer": bool(integer)}))
        else:
            counts = np.bincount(flat.astype("int64"), minlength=c_out)
    elif one_hot:
        counts = y.reshape(-1, y.shape[-1]).sum(axis=0)
    elif kind == "binary":
        flat = y.reshape(-1)
        if np.all((flat == 0) | (flat == 1)):
            counts = np.bincount(flat.astype("int64"), minlength=2)
    # logits vs probabilities
    if kind in ("sparse", "categorical") and c_out > 1 and np.all(np.isfinite(probs)):
        rows_are_probs = (np.all(probs >= 0) and np.all(probs <= 1)
                          and np.allclose(probs.sum(axis=-1), 1.0, atol=1e-3))
        if from_logits and rows_are_probs:
            found.append(_finding(
                "logits_mismatch",
                "The loss has `from_logits=True`, but the model's outputs are "
                "already probabilities (each row sums to 1): a softmax is applied "
                "twice and the loss cannot go below about ln(1 + (C-1)/e).",
                {"from_logits": True, "outputs_are_probabilities": True}))
        elif not from_logits and not rows_are_probs:
            found.append(_finding(
                "logits_mismatch",
                "The loss has `from_logits=False`, but the model's outputs are "
                f"not probabilities (range [{probs.min():.3g}, {probs.max():.3g}], "
                "rows do not sum to 1): use `from_logits=True` or a softmax.",
                {"from_logits": False, "outputs_are_probabilities": False}))
    if counts is not None:
        present = counts[counts > 0]
        if len(present) == 1:
            found.append(_finding(
                "single_class",
                f"Every label in the sample ({int(counts.sum())}) is class "
                f"{int(np.flatnonzero(counts)[0])}.",
                {"counts": counts.tolist()}))
        elif present.max() >= t["imbalance_ratio"] * present.min():
            found.append(_finding(
                "class_imbalance",
                f"The largest class has {int(present.max())} examples, the smallest "
                f"{int(present.min())} ({present.max() / present.min():.3g}x).",
                {"counts": counts.tolist()}))
    return found, counts


def _order_check(y, batch_size, t):
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    y = y.reshape(len(y), -1).mean(axis=1).astype("float64")
    n_batches = min(len(y) // batch_size, t["order_batches"])
    if n_batches < 3 or np.var(y) <= 0:
        return []
    means = y[: n_batches * batch_size].reshape(n_batches, batch_size).mean(axis=1)
    ratio = float(np.var(means) / (np.var(y) / batch_size))
    if ratio > t["order_ratio"]:
        return [_finding(
            "data_order",
            f"The first {n_batches} batches' mean labels spread {ratio:.3g}x as "
            "much as random batches' would: the data come sorted or grouped "
            f"(the first batches' labels: {np.round(means[:6], 2).tolist()}).",
            {"label_spread_ratio": ratio, "batches": n_batches,
             "batch_mean_labels": means.tolist()})]
    return []


def _clone_layer(layer):
    if isinstance(layer, keras.layers.Lambda):
        return layer  # stateless; its Python function cannot be re-created safely
    return layer.__class__.from_config(layer.get_config())


def _copy(model, learning_rate):
    clone = keras.models.clone_model(model, clone_function=_clone_layer)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=model.loss)
    clone.optimizer.build(clone.trainable_variables)
    clone._kt_fresh_optimizer = [np.array(keras.ops.convert_to_numpy(v))
                                 for v in clone.optimizer.variables]
    return clone


def _train_on(clone, x, y, steps, target=None):
    """Trains on one batch; returns `(final loss, steps taken)`."""
    loss, taken = math.nan, 0
    for _ in range(steps):
        loss = _scalar(clone.train_on_batch(x, y))
        taken += 1
        if not math.isfinite(loss) or (target is not None and loss < target):
            break
    return loss, taken


def _loss(clone, x, y, batch_size=256):
    return _scalar(clone.evaluate(x, y, batch_size=batch_size, verbose=0))


def _scalar(result):
    """The loss from `train_on_batch`/`evaluate` (a scalar or `[loss, ...]`)."""
    if isinstance(result, dict):
        result = result["loss"]
    return float(np.ravel(np.asarray(result, dtype="float64"))[0])


def _gradient_checks(clone, x, y, t):

    found = []
    try:
        grads = stats_lib.gradients(clone, x, y)
    except NotImplementedError:
        return found
    dead = []
    for v, g in zip(clone.trainable_variables, grads):
        if g is None:
            dead.append((v.path, "no gradient"))
        elif not np.all(np.isfinite(g)):
            dead.append((v.path, "non-finite gradient"))
        elif not np.any(g):
            dead.append((v.path, "zero gradient"))
    if dead:
        found.append(_finding(
            "dead_gradients",
            f"{len(dead)} of {len(grads)} trainable variables get no usable "
            "gradient: " + ", ".join(f"{p} ({why})" for p, why in dead[:6])
            + (" ..." if len(dead) > 6 else "") + ".",
            {"variables": {p: why for p, why in dead}}))
    try:
        recorder = stats_lib.StatisticsRecorder(clone, (x, y))
        record = recorder.record(0)
    except (ValueError, NotImplementedError):
        return found
    statistics = dict(recorder.metadata(), records=[dict(record, update_ratio=None)])
    for f in stats_lib.detect(statistics, t):
        if f.code in ("dead_relu", "vanishing_activations", "exploding_activations"):
            f.message = "At initialization: " + f.message
            found.append(f)
    return found


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
    # The activation statistics' own thresholds, with a dead-ReLU fraction
    # for a network at initialization.
    **stats_lib.DEFAULT_THRESHOLDS,
    "dead_relu_fraction": 0.9,
}


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


def check(model, data, batch_size=32, shuffle=False, num_examples=512,
          overfit_steps=150, signal_steps=60, learning_rate=3e-3,
          lr_range_test=False, thresholds=None):
    """Checks a model and its data before training, in seconds.

    Runs the sanity checks of Karpathy's "A Recipe for Training Neural
    Networks" (the module docstring lists each rule) on the first
    `num_examples` examples, training only copies of the model.

    Args:
        model: a compiled Keras model (functional or `Sequential` for the
            activation statistics).
        data: `(x, y)` arrays, or a batched `tf.data.Dataset`/iterable of
            `(x, y)` in the order training will see them.
        batch_size: the training batch size (for the data-order check).
            Defaults to `32`.
        shuffle: whether `fit` will shuffle the arrays itself (then the order
            check is skipped and the sample is drawn at random). Defaults to
            `False`.
        num_examples: examples sampled. Defaults to `512`.
        overfit_steps: most steps of the one-batch overfit. Defaults to `150`.
        signal_steps: steps of the short training of the learnable-signal
            check. Defaults to `60`.
        learning_rate: Adam's rate for the copies. Defaults to `3e-3`.
        lr_range_test: also run `find_learning_rate` on a copy. Defaults to
            `False`.
        thresholds: dict overriding entries of `DEFAULT_THRESHOLDS`.
            Defaults to `None`.

    Returns:
        A `PreflightReport` (`str()` in words, `to_json()`, `.errors`).

    Raises:
        ValueError: if the model is not compiled, or for bad arguments.

    Example:

    ```python
    report = kt.preflight.check(model, (x_train, y_train), batch_size=64)
    print(report)
    ```

    References:
        - Karpathy, 2019, "A Recipe for Training Neural Networks",
          http://karpathy.github.io/2019/04/25/recipe/
    """
    if getattr(model, "loss", None) is None or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "`model` must be compiled (loss and optimizer). "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    for name, value, low in (("batch_size", batch_size, 1), ("num_examples", num_examples, 8),
                             ("overfit_steps", overfit_steps, 1),
                             ("signal_steps", signal_steps, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(
                f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    t = merged_thresholds(DEFAULT_THRESHOLDS, thresholds)
    start = time.perf_counter()
    findings, notes = [], []
    checks = _Timed()
    with _RandomState():
        rng = np.random.default_rng(0)
        x, y = _take(data, num_examples, batch_size, shuffle, rng)
        n = len(y)
        checks.append("inputs")
        full_x = data[0] if isinstance(data, (tuple, list)) and len(data) in (2, 3) else x
        findings += _input_checks(x, t, full_x)
        finite_x = keras.tree.map_structure(
            lambda a: np.nan_to_num(np.asarray(a), nan=0.0, posinf=0.0, neginf=0.0)
            if np.issubdtype(np.asarray(a).dtype, np.floating) else a, x)
        kind, from_logits = _loss_kind(model)
        clone = _copy(model, learning_rate)
        with_weights = model.get_weights()
        outputs = keras.ops.convert_to_numpy(clone(_slice(finite_x, slice(0, 256)),
                                                   training=False))
        checks.append("labels")
        label_findings, counts = _label_checks(y, outputs, kind, from_logits, t)
        findings += label_findings
        broken_labels = any(f.code in ("labels_out_of_range", "label_format")
                            for f in label_findings)
        if not shuffle:
            checks.append("data_order")
            findings += _order_check(y, batch_size, t)
        if broken_labels:
            notes.append("labels do not fit the loss: training checks skipped.")
        else:
            chance = _entropy(counts) if counts is not None else None
            checks.append("init_loss")
            init = _loss(clone, finite_x, y)
            # a uniform guess over the C outputs scores ln C whatever the labels
            c_out = outputs.shape[-1] if outputs.ndim >= 2 else 1
            uniform = math.log(c_out) if kind in ("sparse", "categorical") else (
                math.log(2) if kind == "binary" else chance)
            if uniform is not None and init > t["init_loss_factor"] * uniform + t[
                    "init_loss_margin"]:
                findings.append(_finding(
                    "init_loss",
                    f"The loss at initialization is {init:.4g}, against {uniform:.4g} "
                    f"for a uniform guess over the {c_out} outputs (ln C).",
                    {"init_loss": init, "chance": uniform}))
            if chance is None:
                notes.append("no class labels: the chance-level checks are skipped.")
            checks.append("gradients_and_activations")
            findings += _gradient_checks(clone, _slice(finite_x, slice(0, 64)),
                                         y[:64], t)
            # overfit one batch, and the same batch with zeroed inputs
            b = min(16, n)
            xb, yb = _slice(finite_x, slice(0, b)), y[:b]
            chance_b = chance if chance is not None else 1.0
            checks.append("overfit_one_batch")
            fit_loss, fit_steps = _train_on(clone, xb, yb, overfit_steps,
                                            target=0.5 * t["overfit_fraction"] * chance_b)
            if chance is not None and not fit_loss < t["overfit_fraction"] * chance:
                findings.append(_finding(
                    "cannot_overfit",
                    f"Trained for up to {overfit_steps} steps on one batch of {b}, a "
                    f"copy of the model only reached a loss of {fit_loss:.4g} "
                    f"(chance {chance:.4g}).",
                    {"loss": fit_loss, "chance": chance, "steps": overfit_steps,
                     "batch": b}))
            checks.append("input_independent_baseline")
            zero = _reset(clone, with_weights)
            xz = keras.tree.map_structure(np.zeros_like, xb)
            # as many steps as the real inputs took: the same budget
            zero_loss, _ = _train_on(zero, xz, yb, max(fit_steps, 10))
            if math.isfinite(zero_loss) and math.isfinite(fit_loss) and (
                    fit_loss > t["ignores_input_ratio"] * zero_loss):
                findings.append(_finding(
                    "ignores_input",
                    f"On one batch, a copy trained on the real inputs reached "
                    f"{fit_loss:.4g}, one trained on zeroed inputs {zero_loss:.4g}: "
                    "the inputs do not help.",
                    {"real_inputs_loss": fit_loss, "zero_inputs_loss": zero_loss}))
            # learnable signal: train on half, evaluate the held-back half
            half = n // 2
            if chance is not None and half >= 32:
                checks.append("learnable_signal")
                sig = _reset(clone, with_weights)
                xa, ya = _slice(finite_x, slice(0, half)), y[:half]
                xh, yh = _slice(finite_x, slice(half, n)), y[half:n]
                order = np.random.default_rng(1).permutation(half)
                bs = min(batch_size, half)
                for i in range(signal_steps):
                    idx = order[(i * bs) % half: (i * bs) % half + bs]
                    if len(idx) < 2:
                        continue
                    sig.train_on_batch(_slice(xa, idx), ya[idx])
                held = _loss(sig, xh, yh)
                held_chance = _entropy(_counts(yh, counts)) if counts is not None else chance
                if not held < t["signal_fraction"] * held_chance:
                    findings.append(_finding(
                        "no_signal",
                        f"After {signal_steps} steps on {half} examples, the loss on "
                        f"{n - half} held-back examples is {held:.4g}, not below the "
                        f"chance level {held_chance:.4g}.",
                        {"held_back_loss": held, "chance": held_chance,
                         "steps": signal_steps}))
        if lr_range_test and not broken_labels:
            checks.append("lr_range_test")
            from kerastoolkit.diagnostics.lr_finder import find_learning_rate

            lr_copy = _copy_like(clone, model, with_weights, learning_rate)
            try:
                finder = find_learning_rate(lr_copy, finite_x, y, batch_size=min(
                    batch_size, n), min_lr=1e-6, max_lr=10.0, num_steps=min(100, n // 2))
                findings.append(_finding(
                    "lr_suggestion",
                    f"The LR range test suggests {finder.suggestion:.3g} (steepest "
                    f"{finder.steepest:.3g}) for Adam.",
                    {"suggestion": finder.suggestion, "steepest": finder.steepest}))
            except ValueError as error:
                notes.append(f"LR range test: {error}")
    report = PreflightReport(findings, notes=notes, seconds=time.perf_counter() - start,
                             checks=list(checks))
    report.timings = checks.timings()
    return report


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


def _counts(y, reference):
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        return y.reshape(-1, y.shape[-1]).sum(axis=0)
    flat = y.reshape(-1).astype("int64")
    return np.bincount(flat, minlength=len(reference))


def _reset(clone, weights):
    """The same copy, back at the initial weights with a fresh optimizer state
    (no new copy, no retracing)."""
    clone.set_weights(weights)
    for v, value in zip(clone.optimizer.variables, clone._kt_fresh_optimizer):
        v.assign(value)
    return clone


def _copy_like(clone, model, weights, learning_rate):
    other = keras.models.clone_model(clone, clone_function=_clone_layer)
    other.set_weights(weights)
    other.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=model.loss)
    return other
