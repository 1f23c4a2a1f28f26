"""Training recipes stored as data (like keras-hub's `*_presets.py`).

A `Recipe` is immutable data (a name, a description, its source and a
config) plus the builders a Keras script needs: `optimizer`, `callbacks`,
`loss`, `augmentation`, `standardization`, and the shortcuts `compile` and
`fit`.

```python
import keras
import kerastoolkit as kt

recipe = kt.presets.get("sgd_warmup_cosine", batch_size=32)
model.compile(
    optimizer=recipe.optimizer(steps_per_epoch=45, epochs=30),
    loss=recipe.loss(),
    metrics=["accuracy"],
)
model.fit(..., epochs=30, callbacks=recipe.callbacks(epochs=30))
```

Config fields (every recipe has all of them; a recipe file may give a
subset, the rest take the defaults of `DEFAULT_CONFIG`):

| field | meaning |
| --- | --- |
| `optimizer` | a `kt.optimizers.get` name |
| `learning_rate` | base rate; `None`: the optimizer's default |
| `reference_batch_size` | scale the rate by `batch_size / this` (linear scaling rule, Goyal et al. 2017); `None`: no scaling |
| `weight_decay` | decoupled weight decay given to the optimizer; `None`: its default |
| `optimizer_options` | other constructor arguments of the optimizer (`momentum`, `nesterov`, `sync_period`...) |
| `schedule` | `None` (constant), `"cosine"`, `"step"`, `"one_cycle"` or `"cyclic_cosine"` (snapshots) |
| `schedule_options` | `"step"`: `factor` and `milestones` (fractions of the epochs); `"one_cycle"`: `pct_start`, `div_factor`, `final_div_factor` |
| `warmup_epochs` | linear warmup from 0 over these epochs, step by step (0: none) |
| `batch_size`, `epochs` | the recipe's own, or `None`: the caller's |
| `plateau` | `kt.callbacks.PlateauDecay` arguments, or `None` |
| `early_stopping` | `keras.callbacks.EarlyStopping` arguments, or `None` |
| `snapshots` | `kt.callbacks.SnapshotEnsemble` cycles, or `None` |
| `swa` | `{"start_fraction": f}`: `kt.callbacks.SWA` from epoch `floor(f·epochs)`, or `None` |
| `precise_bn` | `kt.callbacks.PreciseBatchNorm` arguments (`num_batches`), or `None` |
| `label_smoothing` | ε of the loss (0: none) |
| `label_smoothing_convention` | `convention` of `kt.losses.SparseCategoricalCrossentropy`, or `None`: its default |
| `dropout` | dropout rate for model builders that take one (`None`: the builder's) |
| `l2` | L2 penalty `l2·Σw²` on every kernel, added by `compile` (`None`: none) |
| `dtype_policy` | Keras dtype policy for model builders that take one, e.g. `"mixed_bfloat16"` (`None`: the global policy) |
| `standardization` | `None`, `"per_channel"` or `"mean_image"` (`kt.layers.Standardize`) |
| `augmentation` | `None` or a `kt.data.augmentation` policy name |
| `augmentation_options` | overrides for that policy |
| `dataset` | the `kt.data` dataset the recipe was checked on |
"""

import copy
import dataclasses
import difflib
import importlib
import json
import math
import os
import types

import keras

from kerastoolkit import _checks
from kerastoolkit import callbacks as kt_callbacks
from kerastoolkit import optimizers as kt_optimizers
from kerastoolkit import schedules as kt_schedules

DEFAULT_CONFIG = {
    "optimizer": "adam",
    "learning_rate": None,
    "reference_batch_size": None,
    "weight_decay": None,
    "optimizer_options": {},
    "schedule": None,
    "schedule_options": {},
    "warmup_epochs": 0,
    "batch_size": None,
    "epochs": None,
    "plateau": None,
    "early_stopping": None,
    "snapshots": None,
    "swa": None,
    "precise_bn": None,
    "label_smoothing": 0.0,
    "label_smoothing_convention": None,
    "dropout": None,
    "l2": None,
    "dtype_policy": None,
    "standardization": None,
    "augmentation": None,
    "augmentation_options": {},
    "dataset": "digits",
}

#: The plateau decay and early stopping of the `adam` preset: the library's
#: defaults for `kerastoolkit train` when a recipe monitors a validation set.
DEFAULT_PLATEAU = {"monitor": "val_loss", "factor": 0.1, "patience": 4}
DEFAULT_EARLY_STOPPING = {"monitor": "val_loss", "patience": 8, "restore_best_weights": True}

_SCHEDULES = (None, "cosine", "step", "one_cycle", "cyclic_cosine")
_STANDARDIZATION = (None, "per_channel", "mean_image")
_DTYPE_POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _preset(description, source, **config):
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:  # a typo in this file
        raise KeyError(unknown)
    return {"description": description, "source": source, "config": dict(DEFAULT_CONFIG, **config)}


PRESETS = {
    "adam": _preset(
        "Adam at the lecture's defaults (1e-3, 0.9, 0.999, 1e-8), the rate divided "
        "by 10 after 4 epochs without validation improvement, early stopping "
        "with patience 8 that restores the best weights.",
        "Kingma & Ba 2015; the lecture's plateau decay and early stopping",
        plateau=DEFAULT_PLATEAU,
        early_stopping=DEFAULT_EARLY_STOPPING,
    ),
    "karpathy_adam": _preset(
        "Adam at 3e-4 (\"the best learning rate for Adam\"), early stopping with patience 10.",
        "Andrej Karpathy, 2016",
        optimizer="karpathy",
        early_stopping={"monitor": "val_loss", "patience": 10, "restore_best_weights": True},
    ),
    "sgd_warmup_cosine": _preset(
        "SGD with momentum 0.9 at 0.1 x batch/256 (linear scaling rule), linear "
        "warmup over 5 epochs, then cosine decay to zero over the remaining "
        "epochs; early stopping (patience 5) restores the best weights.",
        "Goyal et al. 2017 (warmup, linear scaling); Loshchilov & Hutter 2017 (cosine); "
        "early stopping added after kerastoolkit's diagnosis found overfitting_definite",
        optimizer="sgd",
        learning_rate=0.1,
        reference_batch_size=256,
        schedule="cosine",
        warmup_epochs=5,
        early_stopping={"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
    ),
    "snapshot_ensemble": _preset(
        "SGD with momentum 0.9, a cyclic cosine rate from 0.1 restarted 5 times, "
        "one snapshot per cycle, averaged as an ensemble at the end.",
        "Huang et al. 2017, Snapshot Ensembles: Train 1, get M for free",
        optimizer="sgd",
        learning_rate=0.1,
        schedule="cyclic_cosine",
        snapshots=5,
    ),
    "sgd_momentum_step": _preset(
        "SGD with momentum 0.9 at 0.1 per 128 examples (scaled linearly with the "
        "batch), the rate multiplied by 0.1 at 50% and 75% of the epochs, weight "
        "decay 1e-4 (decoupled), early stopping with patience 8.",
        "He et al. 2016, Deep Residual Learning (CIFAR schedule: 0.1 at batch 128); "
        "Goyal et al. 2017 (linear scaling)",
        optimizer="sgd",
        learning_rate=0.1,
        reference_batch_size=128,
        weight_decay=1e-4,
        schedule="step",
        schedule_options={"factor": 0.1, "milestones": [0.5, 0.75]},
        early_stopping={"monitor": "val_loss", "patience": 8, "restore_best_weights": True},
    ),
    "goyal_large_batch": _preset(
        "SGD with momentum 0.9 at 0.1 per 256 examples scaled linearly with the "
        "global batch, a 5-epoch gradual warmup from 0, then the rate x0.1 at "
        "1/3, 2/3 and 8/9 of the epochs (epochs 30, 60, 80 of 90); weight decay 1e-4.",
        "Goyal et al. 2017, Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
        optimizer="sgd",
        learning_rate=0.1,
        reference_batch_size=256,
        weight_decay=1e-4,
        schedule="step",
        schedule_options={"factor": 0.1, "milestones": [1 / 3, 2 / 3, 8 / 9]},
        warmup_epochs=5,
        early_stopping={"monitor": "val_loss", "patience": 8, "restore_best_weights": True},
    ),
    "cosine_warmup_adamw": _preset(
        "AdamW at 1e-3 with decoupled weight decay 0.05, linear warmup over 2 "
        "epochs then cosine decay to zero, label smoothing 0.1, dropout 0.2 "
        "before the classifier, per-channel input standardization; early "
        "stopping (patience 5) restores the best weights.",
        "Loshchilov & Hutter 2019 (AdamW), 2017 (cosine); Szegedy et al. 2016 (label smoothing); "
        "early stopping added after kerastoolkit's diagnosis found overfitting_definite",
        optimizer="adamw",
        learning_rate=1e-3,
        weight_decay=0.05,
        schedule="cosine",
        warmup_epochs=2,
        label_smoothing=0.1,
        dropout=0.2,
        standardization="per_channel",
        early_stopping={"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
    ),
    "swats": _preset(
        "SWATS: Adam that switches to SGD once its projected SGD rate has "
        "converged, plateau decay (patience 4) and early stopping (patience 8).",
        "Keskar & Socher 2017, Improving Generalization Performance by Switching from Adam to SGD",
        optimizer="swats",
        plateau=DEFAULT_PLATEAU,
        early_stopping=DEFAULT_EARLY_STOPPING,
    ),
    "lookahead_adam": _preset(
        "Lookahead around Adam (k=5 fast steps, slow step 0.5), plateau decay "
        "(patience 4) and early stopping (patience 8).",
        "Zhang et al. 2019, Lookahead Optimizer: k steps forward, 1 step back",
        optimizer="lookahead",
        plateau=DEFAULT_PLATEAU,
        early_stopping=DEFAULT_EARLY_STOPPING,
    ),
    "fast": _preset(
        "The fastest recipe found here for small image classification on a CPU: "
        "bfloat16 mixed precision (about 1.5-2x the float32 throughput on CPUs with "
        "AVX512-BF16/AMX), batch 128, Adam on a one-cycle schedule peaking at 4e-3 "
        "over 5 epochs, per-channel input standardization.",
        "Smith & Topin 2019 (super-convergence, one-cycle); Kalamkar et al. 2019 "
        "(bfloat16 training); measured in benchmarks/time_to_accuracy.py",
        optimizer="adam",
        learning_rate=4e-3,
        schedule="one_cycle",
        schedule_options={"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        batch_size=128,
        epochs=5,
        standardization="per_channel",
        dtype_policy="mixed_bfloat16",
        dataset="fashion_mnist",
    ),
}


# --------------------------------------------------------------------------
# Immutability and validation.


def _all_layers(model):
    """Every layer of `model`, nested models' layers included (public `layers` only)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _freeze(value):
    """A deep read-only copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, (dict, types.MappingProxyType)):
        return types.MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    """A deep mutable (and JSON-safe) copy of a frozen value."""
    if isinstance(value, (dict, types.MappingProxyType)):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _bad(field, value, what):
    return ValueError(f"Recipe field `{field}` must be {what}. Received: {field}={value!r}")


def _check_field(field, value):
    """Validates one config field; raises naming it."""
    if field == "optimizer":
        if not isinstance(value, str) or value not in kt_optimizers.OPTIMIZER_DEFAULTS:
            raise _bad(field, value, f"one of {', '.join(kt_optimizers.names())}")
    elif field in ("learning_rate",):
        if value is not None and (not _checks.is_real(value) or not value > 0):
            raise _bad(field, value, "a positive number or None")
    elif field in ("weight_decay", "l2"):
        if value is not None and (not _checks.is_real(value) or value < 0):
            raise _bad(field, value, "a non-negative number or None")
    elif field in ("reference_batch_size", "batch_size", "epochs", "snapshots"):
        if value is not None and (not _checks.is_int(value) or value < 1):
            raise _bad(field, value, "a positive integer or None")
    elif field == "warmup_epochs":
        if not _checks.is_int(value) or value < 0:
            raise _bad(field, value, "an integer >= 0")
    elif field in ("label_smoothing",):
        if not _checks.is_real(value) or not 0 <= value < 1:
            raise _bad(field, value, "a number in [0, 1)")
    elif field == "dropout":
        if value is not None and (not _checks.is_real(value) or not 0 <= value < 1):
            raise _bad(field, value, "a number in [0, 1) or None")
    elif field == "schedule":
        if value not in _SCHEDULES:
            raise _bad(field, value, f"one of {_SCHEDULES}")
    elif field == "dtype_policy":
        if value not in _DTYPE_POLICIES:
            raise _bad(field, value, f"one of {_DTYPE_POLICIES}")
    elif field == "standardization":
        if value not in _STANDARDIZATION:
            raise _bad(field, value, f"one of {_STANDARDIZATION}")
    elif field in ("optimizer_options", "schedule_options", "augmentation_options"):
        if not isinstance(value, (dict, types.MappingProxyType)):
            raise _bad(field, value, "a mapping of argument names to values")
    elif field in ("plateau", "early_stopping", "swa", "precise_bn"):
        if value is not None and not isinstance(value, (dict, types.MappingProxyType)):
            raise _bad(field, value, "a mapping of callback arguments or None")
        if field == "swa" and value is not None:
            fraction = value.get("start_fraction")
            if not _checks.is_real(fraction) or not 0 <= fraction < 1:
                raise _bad("swa.start_fraction", fraction, "a number in [0, 1)")
    elif field in ("augmentation", "label_smoothing_convention"):
        if value is not None and not isinstance(value, str):
            raise _bad(field, value, "a string or None")
    elif field == "dataset":
        if not isinstance(value, str):
            raise _bad(field, value, "a kt.data dataset name")
    else:
        close = difflib.get_close_matches(str(field), list(DEFAULT_CONFIG), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown recipe field `{field}`.{hint} Fields: {', '.join(sorted(DEFAULT_CONFIG))}. "
            f"Received: {field}={value!r}"
        )


def _check_config(config):
    for field, value in config.items():
        _check_field(field, value)
    schedule_options = config["schedule_options"]
    if config["schedule"] == "step":
        milestones = schedule_options.get("milestones")
        if (
            not isinstance(milestones, (list, tuple))
            or not milestones
            or not all(_checks.is_real(m) and 0 < m < 1 for m in milestones)
            or list(milestones) != sorted(milestones)
        ):
            raise _bad("schedule_options.milestones", milestones, "increasing fractions of the epochs in (0, 1)")
    if config["schedule"] == "cyclic_cosine" and not config["snapshots"]:
        raise _bad("snapshots", config["snapshots"], "a positive integer with schedule='cyclic_cosine'")


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def _missing_part(what, module, error):
    return ImportError(
        f"This recipe needs {what} ({module}), which is not part of this kerastoolkit "
        f"installation yet ({error}). Remove the field from the recipe or install a "
        "kerastoolkit that has it."
    )


def _import_part(what, module):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing_part(what, module, error) from None


# --------------------------------------------------------------------------
# The recipe.


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named training recipe: immutable data plus the builders a script needs.

    The config is a deep read-only mapping (`types.MappingProxyType`, lists
    as tuples): `recipe.config["learning_rate"] = 5.0` raises `TypeError`.
    Change a recipe with `kt.presets.get(name, **overrides)` or
    `recipe.replace(**overrides)`, which return new recipes.

    Attributes:
        name: the recipe's name.
        description: what it does, in a sentence.
        source: the paper or person it comes from.
        config: the recipe's fields (see the module docstring).

    Example:

    ```python
    recipe = kt.presets.get("cosine_warmup_adamw", epochs=3)
    history = recipe.fit(model, (x_train, y_train), validation=(x_val, y_val))
    ```
    """

    name: str
    description: str
    source: str
    config: types.MappingProxyType

    def __post_init__(self):
        for attribute in ("name", "description", "source"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value:
                raise _bad(attribute, value, "a non-empty string")
        unknown = [k for k in self.config if k not in DEFAULT_CONFIG]
        for field in unknown:
            _check_field(field, self.config[field])  # raises naming it
        config = dict(DEFAULT_CONFIG, **_thaw(self.config))
        _check_config(config)
        # A frozen dataclass: the normalised config goes straight into the
        # instance dictionary, once, here.
        self.__dict__["config"] = _freeze(config)

    def replace(self, **overrides):
        """A new recipe with some config fields replaced (see `get`)."""
        config = _thaw(self.config)
        for field, value in overrides.items():
            if field not in DEFAULT_CONFIG:
                _check_field(field, value)
            config[field] = _thaw(value)
        if "learning_rate" in overrides and "reference_batch_size" not in overrides:
            config["reference_batch_size"] = None  # the rate given is the rate used
        return Recipe(self.name, self.description, self.source, config)

    def to_dict(self):
        """The recipe as plain JSON-safe data: name, description, source, config."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "config": _thaw(self.config),
        }

    def save(self, path):
        """Writes the recipe to `path`: YAML for `.yaml`/`.yml`, JSON otherwise.

        Returns:
            `path`.
        """
        data = self.to_dict()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                yaml.safe_dump(data, f, sort_keys=False)
            else:
                json.dump(data, f, indent=2)
        return path

    # ---- builders --------------------------------------------------------

    def learning_rate(self, batch_size=None):
        """The base rate, scaled by `batch_size / reference_batch_size` when the recipe says so."""
        config = self.config
        rate = config["learning_rate"]
        if rate is None:
            entry = kt_optimizers.OPTIMIZER_DEFAULTS[config["optimizer"]]
            if "inner" in entry:
                entry = kt_optimizers.OPTIMIZER_DEFAULTS[entry["inner"]]
            rate = entry["config"]["learning_rate"]
        reference = config["reference_batch_size"]
        if reference is not None:
            batch_size = config["batch_size"] if batch_size is None else batch_size
            if batch_size is None:
                raise ValueError(
                    f"Preset {self.name!r} scales its rate with the batch size "
                    "(linear scaling rule): pass `batch_size`. Received: batch_size=None"
                )
            from kerastoolkit.distribute.scaling import scale_learning_rate

            rate = scale_learning_rate(rate, _positive_int("batch_size", batch_size), reference)
        return rate

    def _epochs(self, epochs):
        epochs = _positive_int("epochs", epochs, allow_none=True)
        return self.config["epochs"] if epochs is None else epochs

    def schedule(self, steps_per_epoch=None, epochs=None, batch_size=None):
        """The learning rate: a float or a `LearningRateSchedule` (warmup included).

        Args: as `optimizer`.
        """
        config = self.config
        steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
        epochs = self._epochs(epochs)
        rate = self.learning_rate(batch_size)
        warmup = config["warmup_epochs"]
        kind = config["schedule"]
        if kind in ("cosine", "step", "one_cycle") or warmup:
            for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
                if value is None:
                    raise ValueError(
                        f"Preset {self.name!r} has a schedule in epochs: pass `{name}`. "
                        f"Received: {name}=None"
                    )
        warmup_epochs = min(warmup, max(epochs - 1, 1)) if warmup else 0
        decay_steps = max(epochs - warmup_epochs, 1) * steps_per_epoch if epochs else None
        options = config["schedule_options"]
        schedule = rate
        if kind == "cosine":
            schedule = kt_schedules.Cosine(rate, total=decay_steps)
        elif kind == "one_cycle":
            schedule = kt_schedules.OneCycle(rate, total=decay_steps, **_thaw(options))
        elif kind == "step":
            # Milestones are fractions of all the epochs (warmup included);
            # the warmup wrapper hands the schedule the steps after the warmup.
            total = epochs * steps_per_epoch
            offset = warmup_epochs * steps_per_epoch
            boundaries = sorted({max(int(round(m * total)) - offset, 1) for m in options["milestones"]})
            factor = float(options.get("factor", 0.1))
            values = [rate * factor**i for i in range(len(boundaries) + 1)]
            schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
        # "cyclic_cosine" is installed by SnapshotEnsemble when fit starts.
        if warmup_epochs:
            schedule = kt_schedules.Warmup(schedule, warmup_steps=warmup_epochs * steps_per_epoch)
        return schedule

    def optimizer(self, steps_per_epoch=None, epochs=None, batch_size=None):
        """Builds the recipe's optimizer, its schedule, warmup and weight decay included.

        Args:
            steps_per_epoch: optimizer steps per epoch; needed by recipes with
                a schedule or a warmup. Defaults to `None`.
            epochs: the epochs of the `fit` call. Defaults to `None`: the
                recipe's `epochs`.
            batch_size: the global batch size; needed by recipes that scale
                the rate with it. Defaults to `None`: the recipe's.

        Returns:
            A new `keras.optimizers.Optimizer`.

        Raises:
            ValueError: when an argument the recipe needs is missing or not a
                positive integer.
        """
        config = self.config
        schedule = self.schedule(steps_per_epoch, epochs, batch_size)
        options = _thaw(config["optimizer_options"])
        if config["weight_decay"] is not None:
            options["weight_decay"] = config["weight_decay"]
        entry = kt_optimizers.OPTIMIZER_DEFAULTS[config["optimizer"]]
        if "inner" in entry:  # a wrapper: the rate and decay go to the wrapped optimizer
            inner_options = {k: options.pop(k) for k in ("weight_decay",) if k in options}
            inner = kt_optimizers.get(entry["inner"], learning_rate=schedule, **inner_options)
            return kt_optimizers.get(config["optimizer"], optimizer=inner, **options)
        return kt_optimizers.get(config["optimizer"], learning_rate=schedule, **options)

    def callbacks(self, epochs=None, directory=None, data=None):
        """Builds the recipe's callbacks for `model.fit`.

        Args:
            epochs: the epochs of the `fit` call; needed by snapshot and SWA
                recipes. Defaults to `None`: the recipe's.
            directory: where snapshot recipes write their snapshots. Defaults
                to `None`.
            data: training inputs for the BatchNorm statistics of SWA and
                precise-BN recipes. Defaults to `None`.

        Returns:
            A list of `keras.callbacks.Callback`: snapshots, SWA, precise BN,
            plateau decay, then early stopping (a reduction is tried before
            training stops).

        Raises:
            ValueError: when a recipe misses `epochs`, `directory` or `data`.
        """
        config = self.config
        epochs = self._epochs(epochs)
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
        if config["swa"]:
            if epochs is None:
                raise ValueError(
                    f"Preset {self.name!r} averages weights (SWA) from a fraction of the "
                    "epochs: pass `epochs`. Received: epochs=None"
                )
            options = _thaw(config["swa"])
            start = int(math.floor(options.pop("start_fraction") * epochs))
            result.append(kt_callbacks.SWA(start_epoch=start, data=data, **options))
        if config["precise_bn"] is not None:
            if data is None:
                raise ValueError(
                    f"Preset {self.name!r} recomputes BatchNorm statistics: pass the "
                    "training inputs as `data`. Received: data=None"
                )
            result.append(kt_callbacks.PreciseBatchNorm(data, **_thaw(config["precise_bn"])))
        if config["plateau"]:
            result.append(kt_callbacks.PlateauDecay(**_thaw(config["plateau"])))
        if config["early_stopping"]:
            result.append(keras.callbacks.EarlyStopping(**_thaw(config["early_stopping"])))
        return result

    def loss(self, from_logits=False, sparse=True):
        """The recipe's classification loss, label smoothing included.

        Args:
            from_logits: whether the model outputs logits. Defaults to `False`.
            sparse: integer labels (`True`) or one-hot labels. Defaults to `True`.

        Returns:
            `keras.losses.SparseCategoricalCrossentropy` without smoothing;
            with smoothing `ε`, `kt.losses.SparseCategoricalCrossentropy`
            (Keras's has no `label_smoothing`) for sparse labels, and
            `keras.losses.CategoricalCrossentropy(label_smoothing=ε)` for
            one-hot labels.

        Raises:
            ImportError: when smoothing sparse labels and `kerastoolkit.losses`
                is not installed.
        """
        epsilon = float(self.config["label_smoothing"])
        if not sparse:
            return keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=epsilon)
        if not epsilon:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        losses = _import_part("label smoothing for integer labels", "kerastoolkit.losses")
        options = {}
        if self.config["label_smoothing_convention"] is not None:
            options["convention"] = self.config["label_smoothing_convention"]
        return losses.SparseCategoricalCrossentropy(label_smoothing=epsilon, from_logits=from_logits, **options)

    def augmentation(self):
        """The recipe's augmentation as a `keras.Sequential`, or `None` without a policy.

        Raises:
            ImportError: when `kerastoolkit.data.augmentation` is not installed.
        """
        policy = self.config["augmentation"]
        if policy is None:
            return None
        module = _import_part("an augmentation policy", "kerastoolkit.data.augmentation")
        return module.augmentation(policy, **_thaw(self.config["augmentation_options"]))

    def standardization(self, data=None):
        """The recipe's input standardization layer, adapted to `data` when given.

        Put it first in the model, so the statistics of the training set
        travel with it (and into an exported SavedModel).

        Returns:
            A `kt.layers.Standardize`, or `None` when the recipe has none.

        Raises:
            ImportError: when `kt.layers.Standardize` is not installed.
        """
        mode = self.config["standardization"]
        if mode is None:
            return None
        layers = _import_part("input standardization", "kerastoolkit.layers")
        if not hasattr(layers, "Standardize"):
            raise _missing_part("input standardization", "kerastoolkit.layers.Standardize", "no Standardize")
        layer = layers.Standardize(mode=mode, scale=True)
        if data is not None:
            layer.adapt(data)
        return layer

    def compile(self, model, steps_per_epoch=None, epochs=None, batch_size=None, metrics=("accuracy",), from_logits=False):
        """Compiles `model` with the recipe's optimizer, loss and L2 penalty.

        The L2 penalty `l2·Σw²` is set on every kernel (`Dense`, `Conv`)
        without one, as `keras.regularizers.L2`.

        Args:
            model: a built `keras.Model`.
            steps_per_epoch, epochs, batch_size: as `optimizer`.
            metrics: metrics for `compile`. Defaults to `("accuracy",)`.
            from_logits: whether the model outputs logits. Defaults to `False`.

        Returns:
            `model`, compiled.
        """
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        l2 = self.config["l2"]
        if l2:
            for layer in _all_layers(model):
                kernel = getattr(layer, "kernel", None)
                if kernel is not None and getattr(kernel, "regularizer", None) is None and kernel.trainable:
                    kernel.regularizer = keras.regularizers.L2(l2)
                    if hasattr(layer, "kernel_regularizer"):
                        layer.kernel_regularizer = kernel.regularizer
        model.compile(
            optimizer=self.optimizer(steps_per_epoch, epochs, batch_size),
            loss=self.loss(from_logits=from_logits),
            metrics=list(metrics),
        )
        return model

    def fit(self, model, train, validation=None, epochs=None, batch_size=None, directory=None, callbacks=None, verbose="auto", seed=None, preflight=True):
        """Compiles and trains `model` with the recipe, steps per epoch taken from the data.

        Args:
            model: a built `keras.Model` (compiled here).
            train: `(x, y)` arrays, or a batched `tf.data.Dataset` of a known
                length.
            validation: `(x, y)` arrays or a dataset, or `None`. Defaults to `None`.
            epochs: Defaults to `None`: the recipe's.
            batch_size: batch size for array data. Defaults to `None`: the
                recipe's, else 32.
            directory: where snapshot recipes write snapshots. Defaults to `None`.
            callbacks: more callbacks, after the recipe's. Defaults to `None`.
            verbose: `model.fit` verbosity. Defaults to `"auto"`.
            seed: shuffle seed for array data. Defaults to `None`.
            preflight: run `kt.callbacks.Preflight` before the first step
                (`kt.preflight.check` on a copy of the model, with the
                recipe's optimizer; a few seconds) and stop a run it finds
                an error in. Defaults to `True`.

        Returns:
            The `keras.callbacks.History` of the run.

        Raises:
            ValueError: without epochs, or for a dataset of unknown length.
            kerastoolkit.callbacks.PreflightError: when preflight finds an error.
        """
        epochs = self._epochs(epochs)
        if epochs is None:
            raise ValueError(
                f"Preset {self.name!r} has no epochs of its own: pass `epochs`. Received: epochs=None"
            )
        batch_size = _positive_int("batch_size", batch_size, allow_none=True)
        batch_size = batch_size or self.config["batch_size"] or 32
        import tensorflow as tf  # inherently needed: the input pipeline

        augment = self.augmentation()
        data_for_bn = None
        if isinstance(train, tf.data.Dataset):
            steps = int(train.cardinality())
            if steps < 0:
                raise ValueError(
                    "`train` must be a dataset of known length (steps per epoch come from it), "
                    f"or arrays. Received: train={train!r}"
                )
            dataset = train
            data_for_bn = train.map(lambda x, *rest: x)
            if augment is not None:
                dataset = dataset.map(lambda x, *rest: (augment(x, training=True), *rest))
        else:
            if not isinstance(train, (tuple, list)) or len(train) != 2:
                raise TypeError(f"`train` must be `(x, y)` arrays or a tf.data.Dataset. Received: train={train!r}")
            x, y = train
            steps = -(-len(x) // batch_size)
            data_for_bn = x
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            dataset = dataset.batch(batch_size)
            if augment is not None:
                dataset = dataset.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
            dataset = dataset.prefetch(tf.data.AUTOTUNE)
        if validation is None and (self.config["plateau"] or self.config["early_stopping"]):
            # Nothing to monitor: the recipe's validation callbacks are left out.
            recipe = self.replace(plateau=None, early_stopping=None)
        else:
            recipe = self
        recipe.compile(model, steps_per_epoch=steps, epochs=epochs, batch_size=batch_size)
        every = recipe.callbacks(epochs=epochs, directory=directory, data=data_for_bn) + list(callbacks or [])
        if preflight:  # first: it sees the optimizer as compiled, before the others' on_train_begin
            from kerastoolkit.callbacks.preflight import Preflight

            checked = train if isinstance(train, tf.data.Dataset) else (x, y)
            every.insert(0, Preflight(checked, batch_size=batch_size, shuffle=True, verbose=int(verbose != 0)))
        return model.fit(
            dataset, validation_data=validation, epochs=epochs, callbacks=every, verbose=verbose, shuffle=False
        )


#: The name `Preset` of earlier releases.
Preset = Recipe


def names():
    """The names of every preset, sorted."""
    return sorted(PRESETS)


def list_presets():
    """Every preset as `{"name", "description", "source"}`, sorted by name."""
    return [{"name": n, "description": PRESETS[n]["description"], "source": PRESETS[n]["source"]} for n in names()]


def format_list():
    """The presets as text for `kerastoolkit presets`: one block per name."""
    lines = []
    for entry in list_presets():
        lines.append(entry["name"])
        lines.append(f"    {entry['description']}")
        lines.append(f"    source: {entry['source']}")
    return "\n".join(lines)


def get(name, **overrides):
    """The `Recipe` of a preset name, with some config fields overridden.

    A user's override wins over the preset. Overriding `learning_rate`
    alone also turns off the preset's batch-size scaling (the rate given is
    the rate used). Dict fields (`plateau`, `early_stopping`, ...) are
    replaced whole; `None` turns them off.

    Args:
        name: a preset name, e.g. `"karpathy_adam"`, or a path to a recipe
            file (`.json`, `.yaml`, `.yml`; see `load`).
        **overrides: config fields to replace, e.g. `learning_rate=1e-3`.

    Returns:
        A new `Recipe`.

    Raises:
        ValueError: for an unknown name (the closest names are suggested),
            an unknown override field (named), or a bad value.

    Example:
    >>> recipe = kt.presets.get("karpathy_adam", learning_rate=1e-3)
    >>> float(recipe.optimizer().learning_rate)
    0.001
    """
    if isinstance(name, str) and name.endswith((".json", ".yaml", ".yml")):
        recipe = load(name)
    else:
        if name not in PRESETS:
            close = difflib.get_close_matches(str(name), list(PRESETS), n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"Unknown preset. Available: {', '.join(names())}.{hint} Received: name={name!r}"
            )
        entry = PRESETS[name]
        recipe = Recipe(name, entry["description"], entry["source"], copy.deepcopy(entry["config"]))
    return recipe.replace(**overrides) if overrides else recipe


def load(path):
    """Loads a user's recipe from a JSON or YAML file (as written by `Recipe.save`).

    The file holds `config` (any subset of the fields; the rest take
    `DEFAULT_CONFIG`) and optionally `name`, `description`, `source`. A file
    with only config fields at the top level is read as the config.

    Args:
        path: a `.json`, `.yaml` or `.yml` file.

    Returns:
        A `Recipe`.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: for a file that does not parse or a bad field; the
            message names the file and the field.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No recipe file {path}. Received: path={path!r}")
    with open(path) as f:
        text = f.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:
        raise ValueError(f"Invalid recipe file {path}: it does not parse ({error}). Received: path={path!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"Invalid recipe file {path}: expected a mapping. Received: {type(data).__name__}")
    meta_keys = {"name", "description", "source", "config"}
    if "config" in data:
        extra = sorted(set(data) - meta_keys)
        if extra:
            raise ValueError(
                f"Invalid recipe file {path}: unknown top-level field `{extra[0]}` "
                f"(expected {sorted(meta_keys)}). Received: {extra[0]}={data[extra[0]]!r}"
            )
        config = data["config"] or {}
    else:
        config = {k: v for k, v in data.items() if k not in meta_keys - {"config"}}
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        if not isinstance(config, dict):
            raise _bad("config", config, "a mapping of recipe fields")
        return Recipe(
            data.get("name", stem),
            data.get("description", f"Recipe loaded from {path}"),
            data.get("source", path),
            config,
        )
    except (ValueError, TypeError) as error:
        raise ValueError(f"Invalid recipe file {path}: {error}") from None
