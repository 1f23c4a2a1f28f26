"""`Finding` and `Report`: what a diagnosis says, in words and as data."""

import dataclasses
import json
import math

import numpy as np

#: Every finding code, with its default severity. The codes are public API.
CODES = {
    "nan": "error",
    "diverging": "error",
    "not_training": "error",
    "unshuffled": "warning",
    "repeated_order": "warning",
    "chance_plateau": "error",
    "slow_start": "warning",
    "overfitting_definite": "warning",
    "overfitting_possible": "info",
    "not_converged": "info",
    "dead_relu": "warning",
    "vanishing_activations": "warning",
    "exploding_activations": "warning",
    "vanishing_gradients": "warning",
    "exploding_gradients": "warning",
    "update_ratio": "warning",
    "healed": "warning",
}

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _json_safe(value):
    """Converts NumPy scalars/arrays and non-finite floats for `json.dumps`."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclasses.dataclass
class Finding:
    """One thing the learning curves (or statistics) say about a run.

    Args:
        code: one of `kerastoolkit.diagnostics.CODES`, e.g. `"diverging"`.
        severity: `"error"`, `"warning"` or `"info"`.
        message: what was seen, in words.
        advice: what to try next (the lecture's remedy).
        evidence: the epochs/steps and values that triggered the finding,
            JSON-safe. Defaults to `{}`.

    Raises:
        ValueError: if `code` or `severity` is unknown.
    """

    code: str
    severity: str
    message: str
    advice: str
    evidence: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(
                f"`code` must be one of {sorted(CODES)}. Received: code={self.code!r}"
            )
        if self.severity not in _SEVERITY_ORDER:
            raise ValueError(
                "`severity` must be 'error', 'warning' or 'info'. "
                f"Received: severity={self.severity!r}"
            )
        self.evidence = _json_safe(dict(self.evidence))

    def to_dict(self):
        """Returns the finding as a JSON-safe dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Rebuilds a finding from `to_dict()` output."""
        return cls(**data)

    def __str__(self):
        return f"[{self.severity}] {self.code}: {self.message}\n    -> {self.advice}"


class Report:
    """The diagnosis of one training run.

    Holds the curves it was computed from and its `findings` (sorted by
    severity). `str(report)` is a short summary; `to_json()` serialises it;
    `plot(path)` draws the curves with the findings annotated.

    Args:
        findings: a list of `Finding`.
        epochs: dict of per-epoch lists (`loss`, `val_loss`, ...). Defaults to
            `None`.
        steps: 1-D array of per-step losses. Defaults to `None`.
        steps_per_epoch: steps per epoch, when known. Defaults to `None`.
        statistics: activation/gradient statistics the findings used.
            Defaults to `None`.
        notes: what could not be checked and why (e.g. no validation loss).
            Defaults to `None`.
        interventions: what a healer (`kt.callbacks.SelfHealing`) did, one
            dict per rollback (`curve_step`: where in `steps` it happened).
            Defaults to `None`.
    """

    def __init__(self, findings, epochs=None, steps=None, steps_per_epoch=None,
                 statistics=None, notes=None, interventions=None):
        self.findings = sorted(
            findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f.code)
        )
        self.epochs = epochs
        self.steps = None if steps is None else np.asarray(steps, dtype="float64")
        self.steps_per_epoch = steps_per_epoch
        self.statistics = statistics
        self.notes = list(notes or [])
        self.interventions = [dict(i) for i in interventions or []]

    @property
    def codes(self):
        """The finding codes, in report order."""
        return [f.code for f in self.findings]

    @property
    def healthy(self):
        """`True` when there is no finding."""
        return not self.findings

    def __contains__(self, code):
        return code in self.codes

    def __len__(self):
        return len(self.findings)

    def __iter__(self):
        return iter(self.findings)

    def _describe_run(self):
        parts = []
        if self.epochs and "loss" in self.epochs:
            loss = self.epochs["loss"]
            parts.append(f"{len(loss)} epoch{'' if len(loss) == 1 else 's'}")
            parts.append(f"final loss {_fmt(loss[-1])}")
            if "val_loss" in self.epochs and len(self.epochs["val_loss"]):
                parts.append(f"final val_loss {_fmt(self.epochs['val_loss'][-1])}")
        if self.steps is not None:
            parts.append(f"{len(self.steps)} steps")
        return ", ".join(parts)

    def __str__(self):
        head = "Curve diagnosis"
        run = self._describe_run()
        if run:
            head += f" ({run})"
        return self._format(head)

    def _format(self, head):
        """The text form under `head`: the findings (or "healthy") and the notes."""
        if not self.findings:
            lines = [head + ": healthy, no findings."]
        else:
            lines = [f"{head}: {len(self.findings)} finding(s)"]
            lines += [str(f) for f in self.findings]
        lines += [f"(note: {n})" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self):
        return f"<Report findings={self.codes}>"

    def to_dict(self):
        """Returns the report as a JSON-safe dict (findings and curves)."""
        return _json_safe(
            {
                "healthy": self.healthy,
                "findings": [f.to_dict() for f in self.findings],
                "epochs": self.epochs or {},
                "steps": [] if self.steps is None else self.steps,
                "steps_per_epoch": self.steps_per_epoch,
                "notes": self.notes,
                "interventions": self.interventions,
            }
        )

    def to_json(self, indent=2):
        """Returns `to_dict()` as a JSON string.

        Args:
            indent: JSON indentation. Defaults to `2`.
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text):
        """Rebuilds a report from `to_json()` output."""
        data = json.loads(text)
        steps = [float(s) for s in data.get("steps", [])] or None
        epochs = {
            k: [float(v) for v in vals] for k, vals in data.get("epochs", {}).items()
        } or None
        return cls(
            [Finding.from_dict(f) for f in data["findings"]],
            epochs=epochs,
            steps=steps,
            steps_per_epoch=data.get("steps_per_epoch"),
            notes=data.get("notes"),
            interventions=data.get("interventions"),
        )

    def plot(self, path, title=None):
        """Saves the curves as a PNG with the findings annotated on them.

        Args:
            path: where to write the PNG.
            title: figure title. Defaults to `None`.

        Returns:
            `path`.
        """
        from kerastoolkit.diagnostics.plots import plot_report

        return plot_report(self, path, title=title)


def _fmt(value):
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def merged_thresholds(defaults, thresholds):
    """`defaults` updated with the user's `thresholds`; unknown keys raise, naming them."""
    merged = dict(defaults)
    if thresholds:
        unknown = sorted(set(thresholds) - set(merged))
        if unknown:
            raise ValueError(
                f"Unknown thresholds {unknown}; known: {sorted(merged)}. "
                f"Received: thresholds={thresholds}"
            )
        merged.update(thresholds)
    return merged
