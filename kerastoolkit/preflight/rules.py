"""The checks that read only the data and the model's outputs at initialization."""

import keras
import numpy as np

from kerastoolkit.preflight.codes import finding


def first_weighted_inputs(model, x):
    """What the first layers with weights receive for inputs `x`.

    A layer with weights is one with a trainable weight of rank 2 or more (a
    kernel or an embedding; normalization layers' scales are vectors). The
    layers before it (`Rescaling`, `Normalization`, `kt.layers.Standardize`,
    augmentation) are run, in inference mode, on `x`; a nested model is
    entered. Returns a list of `(layer name, array)`, or `None` when the
    model's graph cannot be read (a subclassed model).
    """
    try:
        found = []
        for layer, path in _first_weighted(model):
            inner = keras.ops.convert_to_numpy(path(x, training=False)) if path else x
            if isinstance(layer, keras.Model):
                deeper = first_weighted_inputs(layer, inner)
                if deeper is None:
                    return None
                found += deeper
            elif not isinstance(layer, keras.layers.Embedding):  # indices, not values
                found.append((layer.name, inner))
        return found or None
    except (AttributeError, ValueError, TypeError, KeyError):
        return None


def _has_weights(layer):
    return any(len(w.shape) >= 2 for w in layer.trainable_weights)


def _first_weighted(model, limit=8):
    """`(layer, path)`: the weighted layers no other weighted layer feeds,
    with the model from the inputs to theirs (`None`: the input itself)."""
    found, seen = [], 0
    for layer in model.layers:
        if not _has_weights(layer):
            continue
        seen += 1
        if seen > limit:
            break
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        if any(layer.input is i for i in keras.tree.flatten(inputs)):
            found.append((layer, None))
            continue
        path = keras.Model(inputs, layer.input)
        if not any(_has_weights(other) for other in path.layers):
            found.append((layer, path))
    return found


def input_checks(raw_x, seen_x, full_x, t):
    """NaN/Inf over all of `full_x`, the scale of what the first weighted
    layers see (`seen_x`, `(name, array)` pairs), constant features of
    `raw_x`."""
    found = _non_finite(full_x)
    for name, a in seen_x:
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.number) or not a.size:
            continue
        v = a.reshape(len(a), -1).astype("float64")
        v = np.where(np.isfinite(v), v, np.nan)
        peak, std, mean = float(np.nanmax(np.abs(v))), float(np.nanstd(v)), float(np.nanmean(v))
        if std > t["input_std"] or abs(mean) > t["input_mean"]:
            where = ("the model's input" if name is None
                     else f"the input of `{name}`, the first layer with weights,")
            found.append(finding(
                "input_scale",
                f"{where[0].upper() + where[1:]} is far from standardized: max |x| = "
                f"{peak:.4g}, std = {std:.4g}, mean = {mean:.4g} (raw 0-255 pixels?).",
                {"layer": name, "max_abs": peak, "std": std, "mean": mean}))
            break
    for a in [np.asarray(a) for a in keras.tree.flatten(raw_x)]:
        if not np.issubdtype(a.dtype, np.number) or len(a) < 2:
            continue
        v = a.reshape(len(a), -1).astype("float64")
        constant = np.nanmax(v, axis=0) - np.nanmin(v, axis=0) <= 0
        frac = float(np.mean(constant))
        if frac > t["constant_fraction"]:
            found.append(finding(
                "constant_input",
                f"{int(constant.sum())} of {constant.size} input features "
                f"({100 * frac:.0f}%) are constant over {len(v)} examples.",
                {"constant_features": int(constant.sum()),
                 "features": int(constant.size)}))
            break
    return found


def _non_finite(full_x):
    every = [np.asarray(a) for a in keras.tree.flatten(full_x)]
    every = [a for a in every if np.issubdtype(a.dtype, np.floating)]
    bad = sum(int(np.sum(~np.isfinite(a))) for a in every)
    if not bad:
        return []
    rows = sorted({int(i) for a in every
                   for i in np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).any(axis=1))})
    return [finding(
        "non_finite_inputs",
        f"{bad} NaN/Inf value(s) in the inputs, in example(s) {rows[:10]}"
        f"{' ...' if len(rows) > 10 else ''}.",
        {"count": bad, "examples": rows[:50]})]


def loss_kind(model):
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


def loss_floor(model, classes):
    """The lowest loss the model's loss allows per example: 0, or with label
    smoothing `ε` the entropy of the smoothed target (predicting it exactly)."""
    loss = getattr(model, "loss", None)
    epsilon = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
    if not epsilon:
        return 0.0
    from kerastoolkit.losses import smoothed_targets

    target = keras.ops.convert_to_numpy(smoothed_targets(
        [0], max(int(classes), 2), epsilon, getattr(loss, "convention", "keras")))[0]
    target = target[target > 0].astype("float64")
    return float(-(target * np.log(target)).sum())


def entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def counts_like(y, reference):
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        return y.reshape(-1, y.shape[-1]).sum(axis=0)
    return np.bincount(y.reshape(-1).astype("int64"), minlength=len(reference))


def row_sum_tolerance(outputs):
    """How far from 1 a row of probabilities may sum in the outputs' own dtype.

    Eight unit roundoffs (`eps / 2`), at least 1e-3: a softmax computed and
    stored in bfloat16 (`mixed_bfloat16`) has rows that sum to 1 only within
    about 2-3 of them (0.008-0.01 measured for 10 and 100 classes).
    """
    import ml_dtypes  # Keras's own dependency: `finfo` that knows bfloat16

    try:
        unit = float(ml_dtypes.finfo(getattr(outputs, "dtype", None)).eps) / 2
    except (TypeError, ValueError):  # not a floating dtype
        unit = 0.0
    return max(1e-3, 8 * unit)


def label_checks(y, outputs, kind, from_logits, t):
    """Label range/format/imbalance and logits checks; returns
    `(findings, class_counts or None, classes)`."""
    found = []
    y = np.asarray(y)
    probs = np.asarray(outputs, "float64")
    sum_tolerance = row_sum_tolerance(outputs)
    c_out = probs.shape[-1] if probs.ndim >= 2 else 1
    counts = None
    # label format
    one_hot = y.ndim >= 2 and y.shape[-1] > 1 and np.all((y == 0) | (y == 1)) and np.all(
        y.sum(axis=-1) == 1)
    if kind == "sparse" and y.ndim >= 2 and y.shape[-1] > 1:
        found.append(finding(
            "label_format",
            f"The labels have shape {y.shape[1:]} (one-hot?) but the loss is a "
            "sparse categorical cross-entropy, which wants integer class ids.",
            {"label_shape": list(y.shape), "loss": "sparse"}))
    elif kind == "categorical" and (y.ndim == 1 or y.shape[-1] == 1) and c_out > 1:
        found.append(finding(
            "label_format",
            f"The labels are class ids (shape {y.shape[1:] or '()'}) but the loss "
            "is a (one-hot) categorical cross-entropy.",
            {"label_shape": list(y.shape), "loss": "categorical"}))
    if kind == "sparse" and not (y.ndim >= 2 and y.shape[-1] > 1):
        flat = y.reshape(-1)
        integer = np.all(np.isfinite(flat)) and np.all(np.equal(np.round(flat), flat))
        low, high = float(np.min(flat)), float(np.max(flat))
        if not integer or low < 0 or high >= c_out:
            found.append(finding(
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
                          and np.allclose(probs.sum(axis=-1), 1.0, rtol=0, atol=sum_tolerance))
        if from_logits and rows_are_probs:
            found.append(finding(
                "logits_mismatch",
                "The loss has `from_logits=True`, but the model's outputs are "
                "already probabilities (each row sums to 1): a softmax is applied "
                "twice and the loss cannot go below about ln(1 + (C-1)/e).",
                {"from_logits": True, "outputs_are_probabilities": True}))
        elif not from_logits and not rows_are_probs:
            found.append(finding(
                "logits_mismatch",
                "The loss has `from_logits=False`, but the model's outputs are "
                f"not probabilities (range [{probs.min():.3g}, {probs.max():.3g}], "
                "rows do not sum to 1): use `from_logits=True` or a softmax.",
                {"from_logits": False, "outputs_are_probabilities": False}))
    if counts is not None:
        present = counts[counts > 0]
        if len(present) == 1:
            found.append(finding(
                "single_class",
                f"Every label in the sample ({int(counts.sum())}) is class "
                f"{int(np.flatnonzero(counts)[0])}.",
                {"counts": counts.tolist()}))
        elif present.max() >= t["imbalance_ratio"] * present.min():
            found.append(finding(
                "class_imbalance",
                f"The largest class has {int(present.max())} examples, the smallest "
                f"{int(present.min())} ({present.max() / present.min():.3g}x).",
                {"counts": counts.tolist()}))
    return found, counts


def order_check(y, batch_size, t):
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
        return [finding(
            "data_order",
            f"The first {n_batches} batches' mean labels spread {ratio:.3g}x as "
            "much as random batches' would: the data come sorted or grouped "
            f"(the first batches' labels: {np.round(means[:6], 2).tolist()}).",
            {"label_spread_ratio": ratio, "batches": n_batches,
             "batch_mean_labels": means.tolist()})]
    return []
