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
| `self_healing` | `kt.callbacks.SelfHealing` arguments (`{}`: its defaults), or `None`: off |
| `label_smoothing` | ε of the loss (0: none) |
| `label_smoothing_convention` | `convention` of `kt.losses.SparseCategoricalCrossentropy`, or `None`: its default |
| `dropout` | dropout rate for model builders that take one (`None`: the builder's) |
| `l2` | L2 penalty `l2·Σw²` on every kernel, added by `compile` (`None`: none) |
| `dtype_policy` | Keras dtype policy for model builders that take one, e.g. `"mixed_bfloat16"` (`None`: the global policy) |
| `standardization` | `None`, `"per_channel"` or `"mean_image"` (`kt.layers.Standardize`) |
| `augmentation` | `None` or a `kt.data.augmentation` policy name |
| `augmentation_options` | overrides for that policy |
| `dataset` | the `kt.data` dataset the recipe was checked on |

Every field, and every key of the mapping fields (against the arguments of
the callback, optimizer, schedule or augmentation policy it is given to),
is checked when a recipe is built (`get`, `load`, `replace`); the module's
tables (`PRESETS`, `DEFAULT_CONFIG`, `DEFAULT_PLATEAU`,
`DEFAULT_EARLY_STOPPING`) are read-only.
"""

import dataclasses
import difflib
import importlib
import inspect
import json
import math
import os
import types

import keras

from kerastoolkit import _checks
from kerastoolkit import callbacks as kt_callbacks
from kerastoolkit import optimizers as kt_optimizers
from kerastoolkit import schedules as kt_schedules
from kerastoolkit.losses import crossentropy as kt_crossentropy
from kerastoolkit.presets import _output_kind as output_kind


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


# Every module-level table here is read-only (`types.MappingProxyType`, nested
# ones too): a script that edits one by accident gets a `TypeError` instead of
# changing the recipes of every later user in the process.
DEFAULT_CONFIG = _freeze({
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
    "self_healing": {},
    "label_smoothing": 0.0,
    "label_smoothing_convention": None,
    "dropout": None,
    "l2": None,
    "dtype_policy": None,
    "standardization": None,
    "augmentation": None,
    "augmentation_options": {},
    "dataset": "digits",
})

#: The plateau decay and early stopping of the `adam` preset: the library's
#: defaults for `kerastoolkit train` when a recipe monitors a validation set.
DEFAULT_PLATEAU = _freeze({"monitor": "val_loss", "factor": 0.1, "patience": 4})
DEFAULT_EARLY_STOPPING = _freeze({"monitor": "val_loss", "patience": 8, "restore_best_weights": True})

_SCHEDULES = (None, "cosine", "step", "one_cycle", "cyclic_cosine")
_STANDARDIZATION = (None, "per_channel", "mean_image")
_DTYPE_POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _preset(description, source, **config):
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:  # a typo in this file
        raise KeyError(unknown)
    return {"description": description, "source": source, "config": dict(_thaw(DEFAULT_CONFIG), **_thaw(config))}


PRESETS = _freeze({
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
        "one snapshot per cycle, averaged as an ensemble at the end; weight decay 1e-4 "
        "added to the gradient, as the ResNets and DenseNets of the paper were trained "
        "(an L2 penalty, l2=5e-5 in Keras's l2*sum(w^2)).",
        "Huang et al. 2017, Snapshot Ensembles: Train 1, get M for free; the decay after "
        "kerastoolkit's diagnosis found the later cycles overfitting on digits without it "
        "(BENCHMARKS.md, issue 23)",
        optimizer="sgd",
        learning_rate=0.1,
        l2=5e-5,
        schedule="cyclic_cosine",
        snapshots=5,
    ),
    "sgd_momentum_step": _preset(
        "SGD with momentum 0.9 at 0.1 per 128 examples (scaled linearly with the "
        "batch), the rate multiplied by 0.1 at 50% and 75% of the epochs, weight "
        "decay 1e-4 added to the gradient as He et al. apply it (an L2 penalty, "
        "l2=5e-5 in Keras's l2*sum(w^2)), early stopping with patience 8.",
        "He et al. 2016, Deep Residual Learning (CIFAR schedule: 0.1 at batch 128, weight decay "
        "1e-4); Goyal et al. 2017 (linear scaling); the L2 form of the decay after kerastoolkit's "
        "diagnosis found overfitting_definite on digits with decoupled 1e-4, ten times weaker "
        "under momentum 0.9 (BENCHMARKS.md, issue 23)",
        optimizer="sgd",
        learning_rate=0.1,
        reference_batch_size=128,
        l2=5e-5,
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
    "fast_float32": _preset(
        "The fastest recipe found here for small image classification on a CPU without "
        "bfloat16 units (AVX2 only: mixed_bfloat16 is emulated there and slower than float32): "
        "float32, batch 128 (256 and 512 were slower per epoch on a 2-core AVX2 CPU and no more "
        "accurate), Adam on a one-cycle schedule peaking at 4e-3 over 3 epochs, per-channel "
        "input standardization.",
        "Smith & Topin 2019 (super-convergence, one-cycle); measured in "
        "benchmarks/headline_speed.py (BENCHMARKS.md, issue 23)",
        optimizer="adam",
        learning_rate=4e-3,
        schedule="one_cycle",
        schedule_options={"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        batch_size=128,
        epochs=3,
        standardization="per_channel",
        dataset="fashion_mnist",
    ),
    "accurate": _preset(
        "The most accurate recipe found here for a small CNN on small images in 10 epochs: "
        "per-channel standardization, horizontal flips (the augmentation that suits clothes: "
        "left-right symmetric; shifts, rotations, shears and zooms, interpolated on 28-pixel "
        "images, cost accuracy in 10 epochs), label smoothing 0.1, Adam on a one-cycle schedule "
        "whose peak (4e-3) the LR range test chose, batch 128; predict with TTA on the views the "
        "augmentation draws (Recipe.tta_views: identity and flip). SWA over the last epochs of "
        "the one-cycle was measured and left out: it cost 0.1-0.2 points.",
        "Simard et al. 2003 (augmentation); Szegedy et al. 2016 (label smoothing); Smith 2017 and "
        "Smith & Topin 2019 (range test, one-cycle); Krizhevsky et al. 2012 (test-time flips); "
        "measured in benchmarks/headline_accuracy.py (BENCHMARKS.md, issue 23)",
        optimizer="adam",
        learning_rate=4e-3,
        schedule="one_cycle",
        schedule_options={"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        batch_size=128,
        epochs=10,
        label_smoothing=0.1,
        standardization="per_channel",
        augmentation="geometric",
        augmentation_options={"rotation": 0.0, "shear": 0.0, "zoom": 0.0, "translation": 0.0},
        dataset="fashion_mnist",
    ),
})


# --------------------------------------------------------------------------
# Immutability and validation.


def _all_layers(model):
    """Every layer of `model`, nested models' layers included (public `layers` only)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _bad(field, value, what):
    return ValueError(f"Recipe field `{field}` must be {what}. Received: {field}={value!r}")


def _closest(name, valid):
    close = difflib.get_close_matches(str(name), list(valid), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _check_keys(field, value, valid):
    """Every key of the mapping `value` must be in `valid`; the error names the closest."""
    for key in value:
        if key not in valid:
            raise ValueError(
                f"Unknown key `{key}` in recipe field `{field}`.{_closest(key, valid)} "
                f"Valid keys: {', '.join(sorted(valid)) or 'none'}. Received: {field}={_thaw(value)!r}"
            )


def _arguments(function, leave_out=()):
    """The named arguments of `function` (of `__init__` for a class), without `leave_out`."""
    if isinstance(function, type):
        function, leave_out = function.__init__, ("self",) + tuple(leave_out)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.kind in kinds} - set(leave_out)


def _try_build(field, build):
    """Builds the object a mapping field describes, once, to check its values."""
    try:
        build()
    except (ValueError, TypeError) as error:
        raise ValueError(f"Recipe field `{field}` is not valid: {error}") from None


def _is_mapping(value):
    return isinstance(value, (dict, types.MappingProxyType))


_REAL, _INT = _checks.is_real, _checks.is_int

# One small check per field: (what it must be, test). `None` allowed where the
# description says "or None".
_SIMPLE_FIELDS = {
    "learning_rate": ("a positive number or None", lambda v: v is None or (_REAL(v) and v > 0)),
    "weight_decay": ("a non-negative number or None", lambda v: v is None or (_REAL(v) and v >= 0)),
    "l2": ("a non-negative number or None", lambda v: v is None or (_REAL(v) and v >= 0)),
    "reference_batch_size": ("a positive integer or None", lambda v: v is None or (_INT(v) and v >= 1)),
    "batch_size": ("a positive integer or None", lambda v: v is None or (_INT(v) and v >= 1)),
    "epochs": ("a positive integer or None", lambda v: v is None or (_INT(v) and v >= 1)),
    "snapshots": ("a positive integer or None", lambda v: v is None or (_INT(v) and v >= 1)),
    "warmup_epochs": ("an integer >= 0", lambda v: _INT(v) and v >= 0),
    "label_smoothing": ("a number in [0, 1)", lambda v: _REAL(v) and 0 <= v < 1),
    "dropout": ("a number in [0, 1) or None", lambda v: v is None or (_REAL(v) and 0 <= v < 1)),
    "schedule": (f"one of {_SCHEDULES}", lambda v: v in _SCHEDULES),
    "dtype_policy": (f"one of {_DTYPE_POLICIES}", lambda v: v in _DTYPE_POLICIES),
    "standardization": (f"one of {_STANDARDIZATION}", lambda v: v in _STANDARDIZATION),
    "label_smoothing_convention": (
        f"one of {kt_crossentropy.CONVENTIONS} or None", lambda v: v is None or v in kt_crossentropy.CONVENTIONS),
    "augmentation": ("a kt.data.augmentation policy name or None", lambda v: v is None or isinstance(v, str)),
    "dataset": ("a kt.data dataset name", lambda v: isinstance(v, str)),
    "optimizer_options": ("a mapping of optimizer arguments", _is_mapping),
    "schedule_options": ("a mapping of schedule arguments", _is_mapping),
    "augmentation_options": ("a mapping of augmentation settings", _is_mapping),
    "plateau": ("a mapping of kt.callbacks.PlateauDecay arguments or None", lambda v: v is None or _is_mapping(v)),
    "early_stopping": (
        "a mapping of keras.callbacks.EarlyStopping arguments or None", lambda v: v is None or _is_mapping(v)),
    "swa": ("a mapping with `start_fraction` (kt.callbacks.SWA) or None", lambda v: v is None or _is_mapping(v)),
    "precise_bn": ("a mapping of kt.callbacks.PreciseBatchNorm arguments or None", lambda v: v is None or _is_mapping(v)),
    "self_healing": ("a mapping of kt.callbacks.SelfHealing arguments or None", lambda v: v is None or _is_mapping(v)),
}


def _check_field(field, value):
    """Validates one config field on its own; raises naming it."""
    if field == "optimizer":
        if not isinstance(value, str) or value not in kt_optimizers.OPTIMIZER_DEFAULTS:
            raise _bad(field, value, f"one of {', '.join(kt_optimizers.names())}")
        return
    if field not in _SIMPLE_FIELDS:
        raise ValueError(
            f"Unknown recipe field `{field}`.{_closest(field, DEFAULT_CONFIG)} "
            f"Fields: {', '.join(sorted(DEFAULT_CONFIG))}. Received: {field}={value!r}"
        )
    what, test = _SIMPLE_FIELDS[field]
    if not test(value):
        raise _bad(field, value, what)


# ---- nested keys: each mapping field against what it is given to ----------


def _optimizer_class(name):
    class_name = kt_optimizers.OPTIMIZER_DEFAULTS[name]["class"]
    if class_name.startswith("keras."):
        return getattr(keras.optimizers, class_name[len("keras."):])
    return getattr(kt_optimizers, class_name)


def _check_optimizer_options(config):
    # The rate and decay are fields of their own; a wrapper's options go to the
    # wrapper (its optimizer is built from the registry's `inner`).
    name = config["optimizer"]
    own = {"learning_rate", "weight_decay", "optimizer"}
    options = config["optimizer_options"]
    for key in sorted(own & set(options)):
        raise ValueError(
            f"Recipe field `optimizer_options` cannot hold `{key}`: "
            + ("the wrapped optimizer comes from the recipe's `optimizer`. " if key == "optimizer"
               else f"`{key}` is a recipe field of its own. ")
            + f"Received: optimizer_options={_thaw(options)!r}"
        )
    _check_keys("optimizer_options", options, _arguments(_optimizer_class(name), own))


def _check_schedule_options(config):
    kind, options = config["schedule"], config["schedule_options"]
    if kind == "step":
        _check_keys("schedule_options", options, {"factor", "milestones"})
        milestones = options.get("milestones")
        if (
            not isinstance(milestones, (list, tuple))
            or not milestones
            or not all(_REAL(m) and 0 < m < 1 for m in milestones)
            or list(milestones) != sorted(milestones)
        ):
            raise _bad("schedule_options.milestones", milestones, "increasing fractions of the epochs in (0, 1)")
        factor = options.get("factor", 0.1)
        if not _REAL(factor) or not 0 < factor <= 1:
            raise _bad("schedule_options.factor", factor, "a number in (0, 1]")
    elif kind == "one_cycle":
        _check_keys("schedule_options", options, _arguments(kt_schedules.OneCycle, ("max_learning_rate", "total")))
        _try_build("schedule_options", lambda: kt_schedules.OneCycle(1.0, total=100, **_thaw(options)))
    else:
        _check_keys("schedule_options", options, set())  # the other schedules take none


def _check_callback_options(config):
    builders = {
        "plateau": (kt_callbacks.PlateauDecay, (), lambda o: kt_callbacks.PlateauDecay(**o)),
        "early_stopping": (keras.callbacks.EarlyStopping, (), lambda o: keras.callbacks.EarlyStopping(**o)),
        "precise_bn": (kt_callbacks.PreciseBatchNorm, ("data",), lambda o: kt_callbacks.PreciseBatchNorm(**o)),
        "self_healing": (kt_callbacks.SelfHealing, (), lambda o: kt_callbacks.SelfHealing(**o)),
    }
    for field, (cls, leave_out, build) in builders.items():
        value = config[field]
        if value is not None:
            _check_keys(field, value, _arguments(cls, leave_out))
            _try_build(field, lambda: build(_thaw(value)))
    swa = config["swa"]
    if swa is not None:
        _check_keys("swa", swa, _arguments(kt_callbacks.SWA, ("start_epoch", "data")) | {"start_fraction"})
        fraction = swa.get("start_fraction")
        if not _REAL(fraction) or not 0 <= fraction < 1:
            raise _bad("swa.start_fraction", fraction, "a number in [0, 1)")
        options = {k: v for k, v in _thaw(swa).items() if k != "start_fraction"}
        _try_build("swa", lambda: kt_callbacks.SWA(start_epoch=0, **options))


def _check_augmentation_options(config):
    policy, options = config["augmentation"], config["augmentation_options"]
    if policy is None:
        _check_keys("augmentation_options", options, set())
        return
    try:  # kt.data needs TensorFlow: without it the recipe cannot augment anyway
        module = importlib.import_module("kerastoolkit.data.augmentation")
    except ImportError:
        return
    try:
        name, _ = module.parse_policy(policy)
    except (ValueError, TypeError) as error:
        raise ValueError(f"Recipe field `augmentation` is not valid: {error}") from None
    valid = set(module.DEFAULTS[name]) | _arguments(module.augmentation, ("policy",))
    _check_keys("augmentation_options", options, valid)


def _check_config(config):
    """Validates every field, then every nested key against what it is given to."""
    for field, value in config.items():
        _check_field(field, value)
    _check_optimizer_options(config)
    _check_schedule_options(config)
    _check_callback_options(config)
    _check_augmentation_options(config)
    if config["schedule"] == "cyclic_cosine" and not config["snapshots"]:
        raise _bad("snapshots", config["snapshots"], "a positive integer with schedule='cyclic_cosine'")


def check_from_logits(model, from_logits, sample=None):
    """Raises when `from_logits` contradicts what `model` outputs: the loss would be the wrong one.

    Args:
        model: a Keras classifier.
        from_logits: the loss's `from_logits`.
        sample: inputs whose outputs are evidence too, or `None`.

    Raises:
        TypeError: if `from_logits` is not a bool.
        ValueError: if the model's last layer, a toolkit wrapper's flag or
            the outputs on `sample` say the other kind.
    """
    if not isinstance(from_logits, bool):
        raise TypeError(f"`from_logits` must be a bool. Received: from_logits={from_logits!r}")
    evidence = output_kind.model_evidence(model, loss=None)
    if sample is not None:
        evidence += output_kind.sample_evidence(keras.ops.convert_to_numpy(model(sample, training=False)))
    wanted = "logits" if from_logits else "probabilities"
    against = [e for e in evidence if e.kind != wanted]
    if against:
        raise ValueError(
            f"The loss would be built with from_logits={from_logits}, but the model outputs "
            f"{against[0].kind} ({'; '.join(e.source for e in against)}): it would train on the "
            f"wrong loss. Pass from_logits={not from_logits}. Received: from_logits={from_logits}"
        )


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
        config = dict(_thaw(DEFAULT_CONFIG), **_thaw(self.config))
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
            plateau decay, early stopping (a reduction is tried before
            training stops), then self-healing (last: when it gives up, the
            others have ended).

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
        if config["self_healing"] is not None:
            result.append(kt_callbacks.SelfHealing(**_thaw(config["self_healing"])))
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

    def tta_views(self, image_shape=None):
        """The test-time-augmentation views that match the recipe's augmentation.

        The deterministic views its training policy itself draws
        (`kt.models.tta.views_for_augmentation`): flips and one-pixel shifts
        when the policy flips and translates, only `"identity"` without a
        policy. `kt.models.TTAPredictor.for_recipe(model, recipe)` predicts
        with them.

        Args:
            image_shape: `(H, W, C)` of the images. Defaults to `None`: the
                input shape of the recipe's `dataset`.

        Returns:
            A list of view names for `kt.models.TTAPredictor`.
        """
        from kerastoolkit.models import tta

        if image_shape is None:
            from kerastoolkit import data

            image_shape = data.info(self.config["dataset"]).input_shape
        return tta.views_for_augmentation(self.augmentation(), image_shape)

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
            from_logits: whether the model outputs logits (a `Dense`
                without activation, the Keras tutorials' classifier) rather
                than probabilities. Defaults to `False`.

        Returns:
            `model`, compiled.

        Raises:
            ValueError: when `from_logits` contradicts the model (a softmax
                last layer with `from_logits=True`, a linear one with
                `False`, a toolkit wrapper's own `from_logits`): the loss
                would be the wrong one.
        """
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        check_from_logits(model, from_logits)
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

    def fit(self, model, train, validation=None, epochs=None, batch_size=None, directory=None, callbacks=None, verbose="auto", seed=None,
            from_logits=False, preflight=True):
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
            from_logits: whether the model outputs logits; checked against
                the model and, for array data, its outputs on the first
                examples. Defaults to `False`.
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
            check_from_logits(model, from_logits, sample=x[:64])
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
        recipe.compile(model, steps_per_epoch=steps, epochs=epochs, batch_size=batch_size, from_logits=from_logits)
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
            an unknown override field or nested key (named, with the
            closest valid name), or a bad value.

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
        recipe = Recipe(name, entry["description"], entry["source"], _thaw(entry["config"]))
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
