"""Named training recipes, stored as data (like keras-hub's `*_presets.py`).

A recipe says which optimizer (by `kt.optimizers.get` name), which learning
rate and schedule, which warmup, and which callbacks a training run uses.
`Preset.optimizer(...)` and `Preset.callbacks(...)` turn it into Keras
objects for an ordinary script:

```python
recipe = kt.presets.get("sgd_warmup_cosine")
model.compile(optimizer=recipe.optimizer(steps_per_epoch=45, epochs=30, batch_size=32), ...)
model.fit(..., epochs=30, callbacks=recipe.callbacks())
```
"""

import dataclasses
import difflib
import math

import keras

from kerastoolkit import callbacks as kt_callbacks
from kerastoolkit import optimizers as kt_optimizers
from kerastoolkit import schedules as kt_schedules

# name -> description, source and config. Config keys:
#   optimizer:            a `kt.optimizers.get` name.
#   learning_rate:        base rate, or None for that optimizer's default.
#   reference_batch_size: when set, the rate is scaled by batch_size / this
#                         (the linear scaling rule of Goyal et al. 2018).
#   schedule:             None (constant), "cosine" (over the epochs after
#                         the warmup) or "cyclic_cosine" (snapshot cycles).
#   warmup_epochs:        linear warmup from 0 over these epochs (0: none).
#   plateau:              `kt.callbacks.PlateauDecay` arguments, or None.
#   early_stopping:       `keras.callbacks.EarlyStopping` arguments, or None.
#   snapshots:            `kt.callbacks.SnapshotEnsemble` cycles, or None.
PRESETS = {
    "adam": {
        "description": (
            "Adam at the lecture's defaults (1e-3, 0.9, 0.999, 1e-8), the rate divided "
            "by 10 after 4 epochs without validation improvement, early stopping "
            "with patience 8 that restores the best weights."
        ),
        "source": "Kingma & Ba 2015; the lecture's plateau decay and early stopping",
        "config": {
            "optimizer": "adam",
            "learning_rate": None,
            "reference_batch_size": None,
            "schedule": None,
            "warmup_epochs": 0,
            "plateau": {"monitor": "val_loss", "factor": 0.1, "patience": 4},
            "early_stopping": {"monitor": "val_loss", "patience": 8, "restore_best_weights": True},
            "snapshots": None,
        },
    },
    "karpathy_adam": {
        "description": "Adam at 3e-4 (\"the best learning rate for Adam\"), early stopping with patience 10.",
        "source": "Andrej Karpathy, 2016",
        "config": {
            "optimizer": "karpathy",
            "learning_rate": None,
            "reference_batch_size": None,
            "schedule": None,
            "warmup_epochs": 0,
            "plateau": None,
            "early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best_weights": True},
            "snapshots": None,
        },
    },
    "sgd_warmup_cosine": {
        "description": (
            "SGD with momentum 0.9 at 0.1 x batch/256 (linear scaling rule), linear "
            "warmup over 5 epochs, then cosine decay to zero over the remaining epochs."
        ),
        "source": "Goyal et al. 2018 (warmup, linear scaling); Loshchilov & Hutter 2017 (cosine)",
        "config": {
            "optimizer": "sgd",
            "learning_rate": 0.1,
            "reference_batch_size": 256,
            "schedule": "cosine",
            "warmup_epochs": 5,
            "plateau": None,
            "early_stopping": None,
            "snapshots": None,
        },
    },
    "snapshot_ensemble": {
        "description": (
            "SGD with momentum 0.9, a cyclic cosine rate from 0.1 restarted 5 times, "
            "one snapshot per cycle, averaged as an ensemble at the end."
        ),
        "source": "Huang et al. 2017, Snapshot Ensembles: Train 1, get M for free",
        "config": {
            "optimizer": "sgd",
            "learning_rate": 0.1,
            "reference_batch_size": None,
            "schedule": "cyclic_cosine",
            "warmup_epochs": 0,
            "plateau": None,
            "early_stopping": None,
            "snapshots": 5,
        },
    },
}

_SCHEDULES = (None, "cosine", "cyclic_cosine")


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named training recipe: data plus two builders.

    Attributes:
        name: the preset's name.
        description: what it does, in a sentence.
        source: the paper or person it comes from.
        config: the recipe (see `kerastoolkit.presets.recipes.PRESETS`).
    """

    name: str
    description: str
    source: str
    config: dict

    def learning_rate(self, batch_size=None):
        """The base rate, scaled by `batch_size / reference_batch_size` when the recipe says so."""
        rate = self.config["learning_rate"]
        if rate is None:
            rate = kt_optimizers.OPTIMIZER_DEFAULTS[self.config["optimizer"]]["config"]["learning_rate"]
        reference = self.config["reference_batch_size"]
        if reference is not None:
            if batch_size is None:
                raise ValueError(
                    f"Preset {self.name!r} scales its rate with the batch size "
                    "(linear scaling rule): pass `batch_size`. Received: batch_size=None"
                )
            rate = rate * _positive_int("batch_size", batch_size) / reference
        return rate

    def optimizer(self, steps_per_epoch=None, epochs=None, batch_size=None):
        """Builds the recipe's optimizer, its schedule and warmup included.

        Args:
            steps_per_epoch: optimizer steps per epoch; needed by recipes with
                a schedule or a warmup. Defaults to `None`.
            epochs: the epochs of the `fit` call; needed by recipes with a
                schedule. Defaults to `None`.
            batch_size: the global batch size; needed by recipes that scale
                the rate with it. Defaults to `None`.

        Returns:
            A `keras.optimizers.Optimizer`.

        Raises:
            ValueError: when an argument the recipe needs is missing or not a
                positive integer.
        """
        config = self.config
        steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
        epochs = _positive_int("epochs", epochs, allow_none=True)
        rate = self.learning_rate(batch_size)
        warmup = config["warmup_epochs"]
        needs = []
        if config["schedule"] == "cosine" or warmup:
            needs = [("steps_per_epoch", steps_per_epoch), ("epochs", epochs)]
        for name, value in needs:
            if value is None:
                raise ValueError(
                    f"Preset {self.name!r} has a schedule in epochs: pass `{name}`. "
                    f"Received: {name}=None"
                )
        schedule = rate
        if config["schedule"] == "cosine":
            decay_epochs = max(epochs - warmup, 1)
            schedule = kt_schedules.Cosine(rate, total=decay_epochs * steps_per_epoch)
        # "cyclic_cosine" is installed by SnapshotEnsemble when fit starts.
        if warmup:
            warmup_epochs = min(warmup, max(epochs - 1, 1))
            schedule = kt_schedules.Warmup(schedule, warmup_steps=warmup_epochs * steps_per_epoch)
        return kt_optimizers.get(config["optimizer"], learning_rate=schedule)

    def callbacks(self, epochs=None, directory=None):
        """Builds the recipe's callbacks for `model.fit`.

        Args:
            epochs: the epochs of the `fit` call; needed by snapshot recipes.
                Defaults to `None`.
            directory: where snapshot recipes write their snapshots. Defaults
                to `None`.

        Returns:
            A list of `keras.callbacks.Callback`: plateau decay before early
            stopping, so that a reduction is tried before training stops.

        Raises:
            ValueError: when a snapshot recipe misses `epochs` or `directory`.
        """
        config = self.config
        result = []
        if config["snapshots"]:
            if epochs is None or directory is None:
                raise ValueError(
                    f"Preset {self.name!r} saves snapshots: pass `epochs` and `directory`. "
                    f"Received: epochs={epochs!r}, directory={directory!r}"
                )
            result.append(
                kt_callbacks.SnapshotEnsemble(
                    # The largest cycle count <= the preset's that divides
                    # `epochs` (every snapshot at a cycle's end).
                    cycles=max(
                        c for c in range(1, min(config["snapshots"], epochs) + 1)
                        if epochs % c == 0
                    ),
                    total_epochs=epochs,
                    directory=directory,  # restarts from the optimizer's rate
                )
            )
        if config["plateau"]:
            result.append(kt_callbacks.PlateauDecay(**config["plateau"]))
        if config["early_stopping"]:
            result.append(keras.callbacks.EarlyStopping(**config["early_stopping"]))
        return result


def names():
    """The names of every preset, sorted."""
    return sorted(PRESETS)


def get(name):
    """The `Preset` of a name; unknown names suggest the closest ones.

    Args:
        name: a preset name, e.g. `"karpathy_adam"`.

    Returns:
        A `Preset`.

    Raises:
        ValueError: for an unknown name.

    Example:
    >>> recipe = kt.presets.get("karpathy_adam")
    >>> recipe.optimizer().learning_rate
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown preset. Available: {', '.join(names())}.{hint} Received: name={name!r}"
        )
    entry = PRESETS[name]
    return Preset(name, entry["description"], entry["source"], entry["config"])
