"""`diagnose`: reads learning curves and says what they mean.

The patterns are the lecture's "diagnosing learning curves" slides. Each
detector works on the training curve `c` (per-step losses binned into at
most `bins` means of at least 10 steps, or else the per-epoch losses), `c0`
its start, `D = c0 - min(c)` the improvement achieved and `c_end` the mean
of its last tenth:

| code | rule (default thresholds) |
| --- | --- |
| `nan` | a non-finite per-step or per-epoch loss |
| `diverging` | `c_end > 1.3·c0`, or `c_end − min(c) > 0.5·D` and `c_end > 2·min(c)`, or the means of 5 equal segments rise at every segment, by > 5% in all, or (per step) `max(c) > 5×` the first step's loss |
| `not_training` | over the means of 5 equal segments `s`: `s0 − min(s) < 0.05·|s0|` and `|s0 − s_end| < 0.05·|s0|` |
| `unshuffled` / `repeated_order` | per-step log-loss, with a quadratic trend removed within each epoch, correlates from one epoch to the next (median r > max(0.5, 3/√steps_per_epoch)) and its mean within-epoch profile has a standard deviation above 0.05 (about 5% of the loss); then the labels decide: the batches' mean labels spread more than 4x the `σ²/n` of random batches: `unshuffled` (sorted data); less: `repeated_order` (mixed batches in the same order every epoch); no labels recorded: `unshuffled`, both causes named |
| `chance_plateau` | the final stretch (≥ 20% of the curve) stays within 0.2% of its median `L`, and before it the loss was below `0.9·L` (a jump up to a flat level); `L` is compared with `ln C` |
| `slow_start` | a plateau (loss within a band of `0.1·D`) that starts in the first 20% of the run, lasts at least 10% of it, and is followed by a fall of at least `0.5·D`, faster than during the plateau |
| `not_converged` | a line through the last quarter of the monitored loss (`val_loss` if present) projects a further gain > 10% of `D` and > 2% of the loss |
| `overfitting_definite` | validation loss (3-epoch mean) ends > 4% above its minimum, at least 2 epochs after it, while training loss kept falling |
| `overfitting_possible` | validation stalls: its loss is not lowest at the last epoch, and its last `max(2, k/2)` epochs made no new low by more than the median epoch-to-epoch change; and over the last third (`k` epochs) training loss falls, validation loss gains < 25% as much, and the gap grows by > 10% of the validation loss |

The activation/gradient codes read the statistics `CurveDiagnostics`
gathers (see `kerastoolkit.diagnostics.statistics`).
"""

import os

import numpy as np

from kerastoolkit.diagnostics import logs as logs_lib
from kerastoolkit.diagnostics import statistics as stats_lib
from kerastoolkit.diagnostics.report import Finding
from kerastoolkit.diagnostics.report import Report
from kerastoolkit.diagnostics.report import merged_thresholds

#: Thresholds of the curve detectors; `diagnose(thresholds=...)` overrides them.
DEFAULT_THRESHOLDS = {
    "bins": 40,
    "not_training_drop": 0.05,
    "diverging_rise": 0.3,
    "diverging_rebound": 0.5,
    "diverging_spike": 5.0,
    "diverging_steady": 0.05,
    "unshuffled_correlation": 0.5,
    "unshuffled_amplitude": 0.05,
    "sorted_label_ratio": 4.0,
    "chance_plateau_flat": 0.002,
    "chance_plateau_length": 0.2,
    "slow_start_plateau": 0.1,
    "slow_start_speedup": 3.0,
    "not_converged_gain": 0.1,
    "not_converged_relative": 0.02,
    "overfitting_rise": 0.04,
    "overfitting_gap": 0.1,
    "overfitting_val_share": 0.25,
    **stats_lib.DEFAULT_THRESHOLDS,
}

ADVICE = {
    "nan": "Numerical instability: lower the learning rate, check the inputs "
    "for NaN/inf or huge values, clip gradients (`clipnorm`).",
    "diverging": "The loss grows: the learning rate is too high, or the update "
    "has a bug (sign, scale). Lower the rate by 3-10x and check the update.",
    "not_training": "The loss does not move: check the update is applied, raise "
    "the learning rate (it may be far too low), check for dead units and "
    "zero initialization.",
    "unshuffled": "The per-step loss repeats every epoch: the data are not "
    "shuffled (e.g. sorted by label). Shuffle every epoch (`shuffle=True`, "
    "`dataset.shuffle(...)`).",
    "repeated_order": "The batches are mixed but every epoch feeds them in the "
    "same order (after `keras.utils.set_random_seed`, `fit(numpy, "
    "shuffle=True)` on TensorFlow repeats one permutation). Feed a "
    "`tf.data.Dataset` with `.shuffle(n, reshuffle_each_iteration=True)`, or "
    "do not set a global seed.",
    "chance_plateau": "A jump to a flat loss at the chance level means the "
    "model now outputs the same guess for every input. Likely causes: NaN "
    "weights hidden behind ReLU (a NaN/inf in the inputs; ReLU maps NaN to 0), "
    "all units dead after a learning-rate spike, or an exploding update. "
    "Check: `np.isnan(w).any()` for each of `model.get_weights()`, the inputs "
    "with `np.isfinite(x).all()`, dead units with "
    "`CurveDiagnostics(statistics_every=..., statistics_data=...)`; lower the "
    "learning rate or clip gradients (`clipnorm`).",
    "slow_start": "A long plateau before learning starts: a bad "
    "initialization. Use Kaiming/Xavier init, or LSUV, or normalization.",
    "not_converged": "Still improving at the end: keep training (more epochs), "
    "possibly with a higher learning rate.",
    "overfitting_possible": "Training keeps improving while validation stalls: "
    "regularize (weight decay, dropout), augment, get more data, use early "
    "stopping.",
    "overfitting_definite": "Validation gets worse while training improves: use "
    "early stopping with restore_best_weights, and stronger regularization.",
}


def _finding(code, message, evidence):
    from kerastoolkit.diagnostics.report import CODES

    return Finding(code, CODES[code], message, ADVICE[code], evidence)


def _bin_means(values, bins, min_size=10):
    n = len(values)
    bins = max(3, min(bins, n // min_size))
    if n <= bins:
        return values.copy(), np.arange(n)
    edges = np.linspace(0, n, bins + 1).astype(int)
    means = np.array([values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    centers = (edges[:-1] + edges[1:] - 1) // 2
    return means, centers


def _tail_mean(c):
    return float(np.mean(c[-max(1, len(c) // 10):]))


# ---------------------------------------------------------------- detectors


def detect_nan(steps, epochs):
    """`nan`: the first non-finite loss, per step and per epoch."""
    evidence = {}
    if steps is not None:
        bad = np.flatnonzero(~np.isfinite(steps))
        if bad.size:
            evidence["step"] = int(bad[0])
            evidence["value"] = float(steps[bad[0]])
            evidence["last_finite_loss"] = (
                float(steps[bad[0] - 1]) if bad[0] > 0 else None
            )
    if epochs is not None:
        bad = np.flatnonzero(~np.isfinite(epochs["loss"]))
        if bad.size:
            evidence["epoch"] = int(bad[0])
            evidence.setdefault("value", float(epochs["loss"][bad[0]]))
    if not evidence:
        return None
    where = (
        f"at step {evidence['step']}" if "step" in evidence
        else f"in epoch {evidence['epoch']}"
    )
    return _finding("nan", f"The loss became {evidence['value']} {where}.", evidence)


def detect_diverging(c, x, unit, t, start=None):
    if len(c) < 3:
        return None
    c0, cmin, cend = float(c[0]), float(np.min(c)), _tail_mean(c)
    drop = c0 - cmin
    scale = max(abs(c0), 1e-12)
    rose = cend - c0 > t["diverging_rise"] * scale
    rebound = drop > 0 and cend - cmin > t["diverging_rebound"] * drop and cend > 2 * cmin
    seg = _segments(c)
    steady = (
        len(seg) >= 3 and np.all(np.diff(seg) > 0)
        and seg[-1] - seg[0] > t["diverging_steady"] * max(abs(seg[0]), 1e-12)
    )
    rose = rose or steady
    i_max = int(np.argmax(c))
    spike = (
        start is not None and start > 0
        and c[i_max] > t["diverging_spike"] * start
    )
    if not (rose or rebound or spike):
        return None
    i_min = int(np.argmin(c))
    evidence = {
        "unit": unit, "start": c0, "minimum": cmin, "minimum_at": int(x[i_min]),
        "end": cend,
    }
    if spike and not (rose or rebound):
        evidence.update(first_steps=float(start), peak=float(c[i_max]),
                        peak_at=int(x[i_max]), minimum_at=int(x[i_max]))
        msg = (f"The loss exploded from {start:.4g} to {c[i_max]:.4g} around "
               f"{unit} {int(x[i_max])} (then {cend:.4g} at the end).")
    elif rose:
        msg = f"The training loss rose from {c0:.4g} to {cend:.4g}."
    else:
        msg = (
            f"The training loss fell to {cmin:.4g} at {unit} {int(x[i_min])}, "
            f"then rose back to {cend:.4g}."
        )
    return _finding("diverging", msg, evidence)


def _segments(c, n=5):
    """Means of `n` equal segments of `c` (fewer when `c` is short)."""
    n = min(n, len(c))
    return np.array([part.mean() for part in np.array_split(np.asarray(c), n)])


def detect_not_training(c, x, unit, t):
    if len(c) < 3:
        return None
    seg = _segments(c)
    c0, cmin, cend = float(seg[0]), float(np.min(seg)), float(seg[-1])
    scale = max(abs(c0), 1e-12)
    limit = t["not_training_drop"] * scale
    if (c0 - cmin) < limit and abs(c0 - cend) < limit:
        return _finding(
            "not_training",
            f"The training loss stayed flat: {c0:.4g} at the start, {cend:.4g} "
            f"at the end, never below {cmin:.4g}.",
            {"unit": unit, "start": c0, "minimum": cmin, "end": cend,
             "relative_drop": (c0 - cmin) / scale},
        )
    return None


def detect_slow_start(c, x, unit, t):
    n = len(c)
    if n < 5:
        return None
    c0, cmin = float(c[0]), float(np.min(c))
    drop = c0 - cmin
    if drop <= 0.2 * max(abs(c0), 1e-12):
        return None
    band = 0.1 * drop
    min_len = max(2, int(np.ceil(t["slow_start_plateau"] * n)))
    best = None
    for i0 in range(0, int(0.2 * n) + 1):
        j = i0 + 1
        lo = hi = c[i0]
        while j < n and max(hi, c[j]) - min(lo, c[j]) <= band:
            lo, hi = min(lo, c[j]), max(hi, c[j])
            j += 1
        if j - i0 >= min_len and j < n:
            level = float(np.mean(c[i0:j]))
            after = float(np.min(c[j:]))
            if level - after >= 0.5 * drop:
                best = (i0, j, level, after)
                break
    if best is None:
        return None
    i0, j, level, after = best
    # learning after the plateau is faster than during it
    plateau_rate = (c[i0] - c[j - 1]) / max(j - 1 - i0, 1)
    below = np.flatnonzero(c[j:] <= level - 0.5 * (level - after))
    after_rate = 0.5 * (level - after) / max(int(below[0]) + 1, 1)
    if after_rate < t["slow_start_speedup"] * max(plateau_rate, 0.0):
        return None
    return _finding(
        "slow_start",
        f"The loss stayed near {level:.4g} from {unit} {int(x[i0])} to "
        f"{int(x[j - 1])} ({100 * (j - i0) / n:.0f}% of the run), then dropped "
        f"to {after:.4g}.",
        {"unit": unit, "plateau_from": int(x[i0]), "plateau_until": int(x[j - 1]),
         "plateau_level": level, "minimum": after,
         "plateau_fraction": (j - i0) / n},
    )


def detect_not_converged(m, name, t):
    m = m[np.isfinite(m)]
    n = len(m)
    if n < 4:
        return None
    k = max(3, n // 4)
    drop = float(m[0] - np.min(m))
    if drop <= 0:
        return None
    slope = np.polyfit(np.arange(k), m[-k:], 1)[0]
    gain = -slope * k
    if gain > t["not_converged_gain"] * drop and gain > t[
        "not_converged_relative"
    ] * abs(m[-1]) and m[-1] <= np.min(m[:-1]) + 0.1 * gain:
        return _finding(
            "not_converged",
            f"`{name}` was still falling at the end ({m[-k]:.4g} -> {m[-1]:.4g} "
            f"over the last {k} epochs); about {gain:.3g} more is in reach.",
            {"monitor": name, "last_epochs": k, "slope_per_epoch": float(slope),
             "projected_gain": float(gain), "end": float(m[-1])},
        )
    return None


def _smooth3(v):
    if len(v) < 3:
        return v.copy()
    out = v.copy()
    out[1:-1] = (v[:-2] + v[1:-1] + v[2:]) / 3
    out[-1] = (v[-2] + v[-1]) / 2
    return out


def detect_overfitting(loss, val, t):
    mask = np.isfinite(val) & np.isfinite(loss)
    epochs = np.flatnonzero(mask)
    loss, val = loss[mask], val[mask]
    n = len(val)
    if n < 4:
        return None
    vs = _smooth3(val)
    best = int(np.argmin(val))
    vmin = float(val[best])
    vend = float(vs[-1])
    noise = float(np.median(np.abs(np.diff(val)))) if n > 2 else 0.0
    rise = vend - vmin
    if (
        best <= n - 3
        and rise > t["overfitting_rise"] * abs(vmin)
        and rise > 2 * noise
        and loss[-1] < loss[best]
    ):
        return _finding(
            "overfitting_definite",
            f"Validation loss was best ({vmin:.4g}) at epoch {int(epochs[best])} "
            f"and rose to {vend:.4g} while training loss fell from "
            f"{loss[best]:.4g} to {loss[-1]:.4g}.",
            {"best_epoch": int(epochs[best]), "best_val_loss": vmin,
             "end_val_loss": vend, "train_loss_at_best": float(loss[best]),
             "end_train_loss": float(loss[-1])},
        )
    k = max(3, n // 3)
    if _still_improving(val, best, noise, max(2, k // 2)):
        # Overfitting is validation getting worse or stalling: a validation
        # loss at its best at the end, or that has just made a new low, is
        # not, however much faster the training loss falls.
        return None
    train_drop = float(loss[-k] - loss[-1])
    val_drop = float(vs[-k] - np.min(vs[-k:]))
    gap_growth = float((vs[-1] - loss[-1]) - (vs[-k] - loss[-k]))
    if (
        train_drop > 0
        and val_drop < t["overfitting_val_share"] * train_drop
        and gap_growth > t["overfitting_gap"] * abs(vmin)
        and gap_growth > 2 * noise
    ):
        return _finding(
            "overfitting_possible",
            f"Over the last {k} epochs training loss fell by {train_drop:.3g} but "
            f"validation loss only by {val_drop:.3g}; the gap grew by "
            f"{gap_growth:.3g}.",
            {"last_epochs": k, "train_drop": train_drop, "val_drop": val_drop,
             "gap_growth": gap_growth, "end_val_loss": float(val[-1]),
             "end_train_loss": float(loss[-1])},
        )
    return None


def _still_improving(val, best, noise, recent):
    """Whether the validation loss is at its lowest at the last epoch, or its
    last `recent` epochs went below everything before by more than `noise`
    (the median epoch-to-epoch change)."""
    if best == len(val) - 1:
        return True
    new_low = float(np.min(val[:-recent]) - np.min(val[-recent:]))
    return new_low > max(noise, 1e-3 * abs(float(val[best])))


def detect_unshuffled(steps, steps_per_epoch, t, step_labels=None):
    """`unshuffled` / `repeated_order`: a per-step loss pattern that repeats
    every epoch, told apart by the labels (sorted data make batches of one
    class) or, without labels, by the size of the swing."""
    if steps is None or not steps_per_epoch or steps_per_epoch < 4:
        return None
    n_epochs = len(steps) // steps_per_epoch
    if n_epochs < 2:
        return None
    m = steps[: n_epochs * steps_per_epoch].reshape(n_epochs, steps_per_epoch)
    if not np.all(np.isfinite(m)):
        return None
    if n_epochs >= 3:
        m = m[1:]  # the first epoch is dominated by fast initial learning
    if np.all(m > 0):
        m = np.log(m)  # exponential trends become linear; amplitude is relative
        level = 1.0
    else:
        level = float(np.mean(np.abs(m)))
    if level <= 0:
        return None
    j = np.arange(steps_per_epoch)
    residual = np.empty_like(m)
    for e, row in enumerate(m):
        residual[e] = row - np.polyval(np.polyfit(j, row, 2), j)
    corrs = []
    for a, b in zip(residual[:-1], residual[1:]):
        if np.std(a) > 0 and np.std(b) > 0:
            corrs.append(float(np.corrcoef(a, b)[0, 1]))
    if not corrs:
        return None
    r = float(np.median(corrs))
    profile = residual.mean(axis=0)
    amplitude = float(np.std(profile)) / level
    # 3/sqrt(n): chance correlation of two noise sequences of n steps
    r_min = max(t["unshuffled_correlation"], 3.0 / np.sqrt(steps_per_epoch))
    if not (r > r_min and amplitude > t["unshuffled_amplitude"]):
        return None
    evidence = {"steps_per_epoch": steps_per_epoch, "epoch_correlation": r,
                "relative_amplitude": amplitude,
                "peak_step_in_epoch": int(np.argmax(profile))}
    labels = label_order(step_labels, steps_per_epoch, n_epochs)
    head = (f"The per-step loss repeats with a period of one epoch "
            f"({steps_per_epoch} steps): correlation {r:.2f} between epochs, "
            f"amplitude {100 * amplitude:.0f}% of the loss")
    if labels is None:
        # The size of the swing does not tell them apart (sorted digits: 8%,
        # one permutation repeated while overfitting: 35%): say both.
        evidence["pattern"] = "unknown"
        finding = _finding(
            "unshuffled",
            f"{head}: the data come in the same order every epoch, either "
            "sorted/grouped or shuffled once and then repeated (no labels "
            "were recorded to tell which).", evidence)
        finding.advice = (ADVICE["unshuffled"] + " If you already pass "
                          "`shuffle=True`: " + ADVICE["repeated_order"])
        return finding
    evidence.update(labels)
    ratio = labels["label_spread_ratio"]
    if ratio > t["sorted_label_ratio"]:
        evidence["pattern"] = "sorted"
        return _finding(
            "unshuffled",
            f"{head}; the data are in order: the batches' mean labels spread "
            f"{ratio:.3g}x as much as those of random batches.", evidence)
    evidence["pattern"] = "same_order_every_epoch"
    return _finding(
        "repeated_order",
        f"{head}; the batches are mixed (their mean labels spread {ratio:.2g}x "
        "as much as those of random batches) but come in the same order every "
        "epoch.", evidence,
    )


def label_order(step_labels, steps_per_epoch, n_epochs):
    """How far the data order is from random, from each batch's labels.

    With `N` examples of label variance `σ²`, the mean label of a random
    batch of `n` varies with variance `σ²/n` (less, without replacement);
    sorted data make the batch means spread far more. Returns
    `label_spread_ratio = var(batch means) / mean(σ²/n_k)` over full epochs
    and `label_sequence_correlation`, the median correlation of the batch-mean
    sequence between consecutive epochs (1 when the order repeats), or
    `None` when no labels were recorded.
    """
    if step_labels is None:
        return None
    size = np.asarray(step_labels.get("size", []), "float64")
    total = np.asarray(step_labels.get("label_sum", []), "float64")
    sq = np.asarray(step_labels.get("label_sq_sum", []), "float64")
    n = n_epochs * steps_per_epoch
    if len(size) < n or not (np.all(np.isfinite(total[:n])) and np.all(size[:n] > 0)):
        return None
    size, total, sq = size[:n], total[:n], sq[:n]
    count = size.sum()
    var = sq.sum() / count - (total.sum() / count) ** 2
    if var <= 0:
        return None
    means = (total / size).reshape(n_epochs, steps_per_epoch)
    spread = float(np.mean(np.var(means, axis=1)) / np.mean(var / size))
    corrs = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(means[:-1], means[1:])
             if np.std(a) > 0 and np.std(b) > 0]
    return {"label_spread_ratio": spread,
            "label_sequence_correlation": float(np.median(corrs)) if corrs else None}


def detect_chance_plateau(c, x, unit, t):
    """`chance_plateau`: the loss jumps up to a level and stays there, flat.

    The final stretch (at least `chance_plateau_length` of the curve) stays
    within `chance_plateau_flat` (relative) of its median `L`, and before it
    the loss had been clearly lower (`min < L − 0.1·|L|`). `L` is compared
    with the chance levels `ln C` (a softmax over `C` uniform classes).
    """
    n = len(c)
    if n < 6 or not np.all(np.isfinite(c)):
        return None
    level = float(np.median(c[-max(2, n // 10):]))
    scale = max(abs(level), 1e-12)
    flat = np.abs(c - level) <= t["chance_plateau_flat"] * scale
    j = n
    while j > 0 and flat[j - 1]:
        j -= 1
    if n - j < max(3, int(np.ceil(t["chance_plateau_length"] * n))) or j == 0:
        return None
    before = float(np.min(c[:j]))
    if before > level - 0.1 * scale:
        return None
    classes = int(round(np.exp(level)))
    evidence = {"unit": unit, "level": level, "from": int(x[j]), "minimum_before": before,
                "flat_fraction": (n - j) / n}
    chance = ""
    if classes >= 2 and abs(level - np.log(classes)) < 0.01 * np.log(classes):
        evidence["chance_classes"] = classes
        chance = f", ln {classes} = {np.log(classes):.4g}: the loss of a uniform guess over {classes} classes"
    return _finding(
        "chance_plateau",
        f"The loss had reached {before:.4g}, then jumped at {unit} {int(x[j])} to "
        f"{level:.4g}{chance}, and stayed there, flat, for the rest of the run "
        f"({100 * (n - j) / n:.0f}% of it).",
        evidence,
    )


# ---------------------------------------------------------------- diagnose


def diagnose(epochs=None, steps=None, steps_per_epoch=None, statistics=None,
             nan_origin=None, thresholds=None, step_labels=None, restored_epoch=None):
    """Diagnoses a training run from its learning curves.

    Reads the per-epoch logs and/or the per-step losses and returns a
    `Report` whose findings use the codes of the lecture's "diagnosing
    learning curves" (see the module docstring for each rule): `nan`,
    `diverging`, `not_training`, `unshuffled`, `slow_start`,
    `not_converged`, `overfitting_possible`, `overfitting_definite`, and,
    from `statistics`, `dead_relu`, `vanishing_activations`,
    `exploding_activations`, `vanishing_gradients`, `exploding_gradients`,
    `update_ratio`. Works on logs from any framework written in these
    formats. A `nan` hides the curve codes (the curve after it is
    meaningless); `chance_plateau`, `diverging` and `not_training` hide
    the milder trend codes (overfitting, convergence, slow start) but not an
    order problem (`unshuffled`, `repeated_order`), which is reported with
    every other finding; with one, the trend detectors read one point per
    epoch.

    Args:
        epochs: a `keras.callbacks.History`, a dict of per-epoch lists
            (`loss`, optionally `val_loss`, metrics), or the path of a Keras
            `CSVLogger` file. Defaults to `None`.
        steps: per-step losses (each batch's own loss) as a sequence, or the
            path of a CSV with `step` and `loss` columns (and `epoch` when
            known). Defaults to `None`.
        steps_per_epoch: steps in one epoch, needed for `unshuffled` when the
            steps carry no `epoch` column. Defaults to `None` (inferred from
            the `epoch` column, or from `len(steps) / len(epochs)`).
        statistics: the activation/gradient statistics recorded by
            `CurveDiagnostics(statistics_every=...)`. Defaults to `None`.
        nan_origin: where a NaN came from (layer, output or gradient), as
            found by `locate_non_finite`; added to the `nan` finding.
            Defaults to `None`.
        thresholds: dict overriding entries of `DEFAULT_THRESHOLDS`.
            Defaults to `None`.
        step_labels: per-step label sums, as `CurveDiagnostics` records
            them: a dict of arrays `size`, `label_sum`, `label_sq_sum`
            aligned with `steps`. Tells sorted data from a repeated order.
            Defaults to `None` (told apart by the loss swing alone).
        restored_epoch: the epoch (0-based position in the epoch log) whose
            weights the model was left with, as
            `keras.callbacks.EarlyStopping(restore_best_weights=True)`
            leaves the best epoch's. An `overfitting_definite` whose kept
            epoch is within the rule's 4% of the best validation loss is
            about the curve, not the model kept: it becomes `info` and says
            so. Needs `epochs` with `val_loss`. Defaults to `None` (the last
            epoch's weights were kept).

    Returns:
        A `Report`.

    Raises:
        ValueError: if both `epochs` and `steps` are `None`, an input is
            empty or malformed, or the step and epoch logs disagree.

    Example:

    >>> report = diagnose({"loss": [2.3, 2.3, 2.3, 2.3, 2.3]})
    >>> report.codes
    ['not_training']
    """
    if epochs is None and steps is None:
        raise ValueError(
            "Give `epochs` and/or `steps`. Received: epochs=None, steps=None"
        )
    t = merged_thresholds(DEFAULT_THRESHOLDS, thresholds)
    if steps_per_epoch is not None and (
        not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1
    ):
        raise ValueError(
            "`steps_per_epoch` must be a positive integer. "
            f"Received: steps_per_epoch={steps_per_epoch}"
        )
    src_e = f" ({epochs})" if isinstance(epochs, (str, os.PathLike)) else ""
    src_s = f" ({steps})" if isinstance(steps, (str, os.PathLike)) else ""
    epoch_logs = None if epochs is None else logs_lib.load_epochs(epochs)
    step_losses, step_epoch = (None, None) if steps is None else logs_lib.load_steps(steps)
    if step_labels is None and src_s:
        step_labels = logs_lib.load_step_labels(steps)
    if steps_per_epoch is None and step_epoch is not None:
        steps_per_epoch = logs_lib.steps_per_epoch_from(step_epoch)
    if epoch_logs is not None and step_losses is not None:
        n_ep = len(epoch_logs["loss"])
        if step_epoch is not None:
            n_step_ep = len(np.unique(step_epoch))
            if n_step_ep > n_ep:
                raise ValueError(
                    f"Mismatched lengths: the steps{src_s} cover {n_step_ep} "
                    f"epochs but the epoch log{src_e} has {n_ep}."
                )
        elif steps_per_epoch is None and len(step_losses) % n_ep == 0:
            steps_per_epoch = len(step_losses) // n_ep
        if steps_per_epoch and len(step_losses) > steps_per_epoch * n_ep:
            raise ValueError(
                f"Mismatched lengths: {len(step_losses)} steps{src_s} do not fit "
                f"in the {n_ep} epochs of the epoch log{src_e} at "
                f"{steps_per_epoch} steps per epoch."
            )
    notes = []
    findings = []

    nan = detect_nan(step_losses, epoch_logs)
    if nan is not None:
        if nan_origin:
            nan.evidence.update(
                {k: v for k, v in nan_origin.items() if k not in nan.evidence}
            )
            if nan_origin.get("description"):
                nan.message += " " + nan_origin["description"]
        findings.append(nan)
    else:
        findings += _curve_findings(epoch_logs, step_losses, steps_per_epoch, t, notes,
                                    step_labels)
    if restored_epoch is not None:
        _judge_restored_weights(findings, epoch_logs, restored_epoch, t)
    if statistics:
        findings += stats_lib.detect(statistics, t)
    return Report(
        findings, epochs=None if epoch_logs is None else
        {k: v.tolist() for k, v in epoch_logs.items()},
        steps=step_losses, steps_per_epoch=steps_per_epoch,
        statistics=statistics, notes=notes,
    )


def _judge_restored_weights(findings, epoch_logs, restored_epoch, t):
    """Says whether an overfitting finding concerns the weights the model kept."""
    val = None if epoch_logs is None else epoch_logs.get("val_loss")
    if val is None:
        raise ValueError(
            "`restored_epoch` needs the per-epoch logs with `val_loss` in `epochs`. "
            f"Received: restored_epoch={restored_epoch!r}"
        )
    if (not isinstance(restored_epoch, (int, np.integer)) or isinstance(restored_epoch, bool)
            or not 0 <= restored_epoch < len(val) or not np.isfinite(val[restored_epoch])):
        raise ValueError(
            f"`restored_epoch` must be the index of an epoch with a finite `val_loss` "
            f"(0 to {len(val) - 1}). Received: restored_epoch={restored_epoch!r}"
        )
    kept = float(val[restored_epoch])
    for finding in findings:
        if finding.code != "overfitting_definite":
            continue
        best = finding.evidence["best_val_loss"]
        finding.evidence.update(restored_epoch=int(restored_epoch), restored_val_loss=kept)
        if kept - best <= t["overfitting_rise"] * abs(best):
            finding.severity = "info"
            finding.message += (
                f" The weights were restored from epoch {int(restored_epoch)} (validation "
                f"loss {kept:.4g}): the model kept is the one from before the rise."
            )
            finding.advice = (
                "Nothing to undo in the model kept. To lower the best validation loss itself: "
                "stronger regularization (weight decay, dropout, augmentation) or more data."
            )
        else:
            finding.message += (
                f" The weights restored, from epoch {int(restored_epoch)}, have a validation "
                f"loss of {kept:.4g}, above the best."
            )


def _train_curve(epoch_logs, step_losses, t):
    """The training curve the trend detectors read: `(values, x, unit)`."""
    if step_losses is not None and len(step_losses) >= 3:
        c, x = _bin_means(step_losses, t["bins"])
        return c, x, "step"
    loss = epoch_logs["loss"]
    return loss, np.arange(len(loss)), "epoch"


def _epoch_curve(epoch_logs, step_losses, steps_per_epoch):
    """The per-epoch training loss: logged, or the mean of each epoch's steps."""
    if epoch_logs is not None:
        loss = epoch_logs["loss"]
        return loss, np.arange(len(loss)), "epoch"
    n = len(step_losses) // steps_per_epoch
    means = step_losses[: n * steps_per_epoch].reshape(n, steps_per_epoch).mean(axis=1)
    return means, np.arange(n), "epoch"


def _curve_findings(epoch_logs, step_losses, steps_per_epoch, t, notes,
                    step_labels=None):
    findings = []
    order = detect_unshuffled(step_losses, steps_per_epoch, t, step_labels)
    if step_losses is not None and not steps_per_epoch:
        notes.append("steps per epoch unknown: `unshuffled` not checked.")
    if order is not None:
        # The within-epoch cycle would read as trends in the binned steps:
        # the trend detectors read one point per epoch instead.
        findings.append(order)
        c, x, unit = _epoch_curve(epoch_logs, step_losses, steps_per_epoch)
    else:
        c, x, unit = _train_curve(epoch_logs, step_losses, t)
    if len(c) < 3:
        notes.append(
            f"only {len(c)} point(s) of training loss: too short to diagnose "
            "the curve."
        )
        return findings
    start = None
    if unit == "step":
        start = float(step_losses[0])  # computed before the first update
    found = detect_chance_plateau(c, x, unit, t)
    if found is None:
        found = detect_diverging(c, x, unit, t, start=start)
    if found is None:
        found = detect_not_training(c, x, unit, t)
    if found is not None:
        # The loss does not fall (or collapsed): overfitting and convergence
        # have no meaning; an independent order problem stays reported.
        return findings + [found]
    slow = detect_slow_start(c, x, unit, t)
    if slow is not None:
        findings.append(slow)
    val = None
    if epoch_logs is not None and "val_loss" in epoch_logs:
        val = epoch_logs["val_loss"]
        if np.sum(np.isfinite(val)) < 4:
            notes.append("fewer than 4 validation points: overfitting not checked.")
            val = None
    else:
        notes.append("no validation loss: overfitting not checked.")
    over = None
    if val is not None:
        over = detect_overfitting(epoch_logs["loss"], val, t)
        if over is not None:
            findings.append(over)
    sorted_data = order is not None and order.code == "unshuffled"
    if over is None and sorted_data:
        notes.append("`not_converged` not checked: with data in order, the trend "
                     "does not say how a shuffled run would converge.")
    elif over is None:
        if val is not None:
            monitor, name = val, "val_loss"
        elif epoch_logs is not None and len(epoch_logs["loss"]) >= 4:
            monitor, name = epoch_logs["loss"], "loss"
        else:
            monitor, name = c, "loss"
        found = detect_not_converged(np.asarray(monitor), name, t)
        if found is not None:
            findings.append(found)
    return findings
