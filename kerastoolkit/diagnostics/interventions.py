"""What a training healer did, for the diagnosis of the run.

`kt.callbacks.SelfHealing` rolls a run back when it sees a non-finite loss, a
loss spike or a divergence. It sits above `diagnostics` in the import graph,
so `CurveDiagnostics` learns of its interventions through this small
interface, keyed by the model:

- `InterventionLog.start(model)`: the healer opens the log of one `fit`.
- `log.add(entry)`: one intervention, a JSON-safe dict (keys below).
- `InterventionLog.of(model)`: the log of the model's current (or last) `fit`,
  or `None` when no healer ever watched it.
- `log.active`: the healer is watching this `fit`: a non-finite loss is its
  to handle (`CurveDiagnostics` does not stop on it).
- `log.on_give_up(function)`: `function()` runs when the healer gives up,
  before it raises (`CurveDiagnostics` writes its report there).

An entry has `action` (`"rolled_back"` or `"gave_up"`), `step` (the steps run
in the `fit` so far), `epoch` and `batch` (Keras's indices of the step that
showed the fault), `seen` (`kind`: `"non_finite_loss"`,
`"non_finite_weights"`, `"spike"` or `"diverging"`, with the loss and the
level and threshold it was compared with), `restored` (the snapshot's
`step`, `epoch`, `batch`; `batch == -1`: before the epoch's first step),
`skipped_batches`, `attempt` and `learning_rate` (`before` and `after`).
The steps after `restored` up to the faulty one were undone: `undone`
masks them out of a recorded curve.
"""

import weakref

import numpy as np

from kerastoolkit.diagnostics.report import _SEVERITY_ORDER as SEVERITY_ORDER
from kerastoolkit.diagnostics.report import CODES
from kerastoolkit.diagnostics.report import Finding

_LOGS = weakref.WeakKeyDictionary()

ADVICE = (
    "The run was rolled back to a snapshot and the batches in between skipped. "
    "A fault that did not come back was one bad batch: check the inputs "
    "(`np.isfinite(x).all()`, extreme values). Faults that came back, spikes "
    "and a divergence mean the learning rate is too high: start from the rate "
    "the run ended with, add a warmup, or clip gradients (`clipnorm`)."
)

_SEEN = {
    "non_finite_loss": "the loss was {loss}",
    "non_finite_weights": "the weights were not finite after the update",
    "spike": "the loss spiked to {loss:.4g} (level {level:.4g}, threshold {threshold:.4g})",
    "diverging": "the loss diverged to {loss:.4g} (best {level:.4g}, threshold {threshold:.4g})",
}


class InterventionLog:
    """The interventions of one `fit` (see the module docstring)."""

    def __init__(self):
        self.entries = []
        self.active = True
        self._give_up = []

    @classmethod
    def start(cls, model):
        """A fresh, active log for `model`'s `fit` (replaces the previous one)."""
        log = cls()
        _LOGS[model] = log
        return log

    @classmethod
    def of(cls, model):
        """The log of `model`'s current or last `fit`, or `None`."""
        return _LOGS.get(model)

    def add(self, entry):
        self.entries.append(dict(entry))

    def on_give_up(self, function):
        self._give_up.append(function)

    def give_up(self):
        """Runs (once) the functions registered with `on_give_up`."""
        functions, self._give_up = self._give_up, []
        for function in functions:
            function()


def undone(epochs, batches, entries):
    """A boolean mask of the recorded steps that rollbacks undid.

    Args:
        epochs, batches: Keras's epoch and batch index of every recorded step.
        entries: intervention entries (see the module docstring).

    Returns:
        A bool array, `True` for a step after a rollback's snapshot and up to
        the step that showed its fault.
    """
    epochs = np.asarray(epochs, "int64")
    batches = np.asarray(batches, "int64")
    mask = np.zeros(len(epochs), bool)
    for entry in entries:
        if entry.get("action") != "rolled_back":
            continue
        first = (entry["restored"]["epoch"], entry["restored"]["batch"])
        last = (entry["epoch"], entry["batch"])
        after = (epochs > first[0]) | ((epochs == first[0]) & (batches > first[1]))
        upto = (epochs < last[0]) | ((epochs == last[0]) & (batches <= last[1]))
        mask |= after & upto
    return mask


def describe(entry):
    """One line for an intervention."""
    seen = entry["seen"]
    what = _SEEN[seen["kind"]].format(**{k: seen.get(k, float("nan")) for k in
                                          ("loss", "level", "threshold")})
    where = f"step {entry['step']} (epoch {entry['epoch']}, batch {entry['batch']})"
    rate = entry["learning_rate"]
    rates = f"learning rate {rate['before']:.4g} -> {rate['after']:.4g}"
    if entry["action"] == "gave_up":
        return f"{where}: {what}; gave up after {entry['attempt'] - 1} attempts ({rates})"
    restored = entry["restored"]
    return (
        f"{where}: {what}; rolled back to step {restored['step']}, skipped "
        f"{entry['skipped_batches']} batch{'' if entry['skipped_batches'] == 1 else 'es'}, {rates}"
    )


def healed_finding(entries):
    """The `healed` finding of a run with interventions, or `None` without."""
    if not entries:
        return None
    rollbacks = [e for e in entries if e["action"] == "rolled_back"]
    gave_up = any(e["action"] == "gave_up" for e in entries)
    kinds = sorted({e["seen"]["kind"] for e in entries})
    head = (
        f"Training was healed {len(rollbacks)} time{'' if len(rollbacks) == 1 else 's'}"
        f" ({', '.join(k.replace('_', ' ') for k in kinds)})"
    )
    if gave_up:
        head += " and then gave up"
    lines = [describe(e) for e in entries[:5]]
    if len(entries) > 5:
        lines.append(f"and {len(entries) - 5} more (`report.interventions`)")
    evidence = {"interventions": len(rollbacks), "gave_up": gave_up, "kinds": kinds,
                "final_learning_rate": entries[-1]["learning_rate"]["after"]}
    return Finding("healed", CODES["healed"], head + ": " + "; ".join(lines) + ".", ADVICE,
                   evidence)


def attach(report, entries, epochs, batches):
    """Adds the interventions and the `healed` finding to a `Report`.

    Args:
        report: the run's `Report`.
        entries: intervention entries.
        epochs, batches: Keras's indices of the steps of `report.steps`
            (the kept ones).
    """
    finding = healed_finding(entries)
    if finding is None:
        return
    epochs = np.asarray(epochs, "int64")
    batches = np.asarray(batches, "int64")
    for entry in entries:
        restored = entry["restored"]
        before = (epochs < restored["epoch"]) | (
            (epochs == restored["epoch"]) & (batches <= restored["batch"]))
        report.interventions.append(dict(entry, curve_step=int(np.sum(before))))
    report.findings.append(finding)
    report.findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.code))


__all__ = ["InterventionLog", "attach", "describe", "healed_finding", "undone"]
