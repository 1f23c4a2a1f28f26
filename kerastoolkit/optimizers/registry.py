"""Optimizers by name, with the lecture's default settings, stored as data."""

import difflib

import keras

from kerastoolkit.optimizers.gradient_noise import GradientNoise
from kerastoolkit.optimizers.lars import LARS
from kerastoolkit.optimizers.lookahead import Lookahead
from kerastoolkit.optimizers.rectified_adam import RectifiedAdam
from kerastoolkit.optimizers.sgd import SGD
from kerastoolkit.optimizers.swats import SWATS

_ADAM = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}

# name -> class, constructor config, the wrapped optimizer's name (wrappers
# only), description and source. Classes given as "keras.X" are Keras's own.
OPTIMIZER_DEFAULTS = {
    "adam": {
        "class": "keras.Adam",
        "config": dict(_ADAM),
        "description": "Adam with bias correction at the default settings.",
        "source": "Kingma & Ba 2015",
    },
    "karpathy": {
        "class": "keras.Adam",
        "config": dict(_ADAM, learning_rate=3e-4),
        "description": "Adam at 3e-4, \"the best learning rate for Adam\".",
        "source": "Andrej Karpathy, 2016",
    },
    "adamw": {
        "class": "keras.AdamW",
        "config": dict(_ADAM, weight_decay=0.004),
        "description": "Adam with decoupled weight decay.",
        "source": "Loshchilov & Hutter 2019",
    },
    "sgd": {
        "class": "keras.SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.9},
        "description": "SGD with momentum 0.9 (m <- 0.9 m - lr g; w <- w + m).",
        "source": "Polyak 1964; Sutskever et al. 2013",
    },
    "sgd_nesterov": {
        "class": "keras.SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
        "description": "SGD with Nesterov momentum 0.9.",
        "source": "Nesterov 1983; Sutskever et al. 2013",
    },
    "sgd_vanilla": {
        "class": "keras.SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.0},
        "description": "Plain mini-batch SGD, no momentum.",
        "source": "Robbins & Monro 1951",
    },
    "sgd_momentum_schedule": {
        "class": "SGD",
        "config": {
            "learning_rate": 0.01,
            "momentum": {
                "schedule": "PolynomialDecay",
                "config": {
                    "initial_learning_rate": 0.5,
                    "decay_steps": 5000,
                    "end_learning_rate": 0.99,
                    "power": 1.0,
                },
            },
        },
        "description": "SGD whose momentum rises linearly from 0.5 to 0.99 "
                       "over 5,000 steps.",
        "source": "Sutskever et al. 2013 (the lecture)",
    },
    "rmsprop": {
        "class": "keras.RMSprop",
        "config": {"learning_rate": 1e-3, "rho": 0.9, "epsilon": 1e-8},
        "description": "RMSProp with decay rate 0.9.",
        "source": "Tieleman & Hinton 2012",
    },
    "adagrad": {
        "class": "keras.Adagrad",
        "config": {"learning_rate": 0.01, "initial_accumulator_value": 0.1,
                   "epsilon": 1e-8},
        "description": "Adagrad.",
        "source": "Duchi, Hazan & Singer 2011",
    },
    "nadam": {
        "class": "keras.Nadam",
        "config": dict(_ADAM),
        "description": "Adam with Nesterov momentum.",
        "source": "Dozat 2016",
    },
    "swats": {
        "class": "SWATS",
        "config": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999,
                   "epsilon": 1e-9, "switch_tolerance": 1e-9},
        "description": "Adam that switches to SGD when the projected SGD "
                       "learning rate has converged.",
        "source": "Keskar & Socher 2017",
    },
    "lookahead": {
        "class": "Lookahead",
        "inner": "adam",
        "config": {"sync_period": 5, "slow_step_size": 0.5},
        "description": "Lookahead(Adam): k=5 fast steps, then halfway back.",
        "source": "Zhang et al. 2019",
    },
    "lars": {
        "class": "LARS",
        "config": {"learning_rate": 1.0, "momentum": 0.9,
                   "weight_decay": 0.0005, "trust_coefficient": 0.001},
        "description": "Momentum SGD with layer-wise trust ratios, for large "
                       "batches.",
        "source": "You, Gitman & Ginsburg 2017",
    },
    "radam": {
        "class": "RectifiedAdam",
        "config": dict(_ADAM, sma_threshold=5.0),
        "description": "Adam with a variance-rectified adaptive rate "
                       "(momentum SGD for the first steps).",
        "source": "Liu et al. 2020",
    },
    "ranger": {
        "class": "Lookahead",
        "inner": "radam",
        "config": {"sync_period": 6, "slow_step_size": 0.5},
        "description": "Lookahead(RAdam): k=6 fast steps, then halfway back.",
        "source": "Wright 2019 (Liu et al. 2020; Zhang et al. 2019)",
    },
    "gradient_noise": {
        "class": "GradientNoise",
        "inner": "adam",
        "config": {"eta": 0.01, "gamma": 0.55},
        "description": "Adam on gradients with annealed Gaussian noise.",
        "source": "Neelakantan et al. 2015",
    },
}

_OURS = {
    "SGD": SGD,
    "SWATS": SWATS,
    "Lookahead": Lookahead,
    "LARS": LARS,
    "GradientNoise": GradientNoise,
    "RectifiedAdam": RectifiedAdam,
}


def names():
    """The names `get` accepts, sorted."""
    return sorted(OPTIMIZER_DEFAULTS)


def _resolve_class(class_name):
    if class_name.startswith("keras."):
        return getattr(keras.optimizers, class_name[len("keras."):])
    return _OURS[class_name]


def get(name, **overrides):
    """Returns a new optimizer by name, with the lecture's default settings.

    The defaults are data (`OPTIMIZER_DEFAULTS`); `overrides` replace
    constructor arguments. For the wrappers (`"lookahead"`,
    `"gradient_noise"`) `optimizer=` may name or give the wrapped optimizer
    (default Adam at the lecture's settings).

    | name | optimizer |
    | --- | --- |
    | `adam` | `keras.optimizers.Adam(1e-3, 0.9, 0.999, epsilon=1e-8)` |
    | `karpathy` | the same Adam at `3e-4` |
    | `adamw` | `keras.optimizers.AdamW`, Adam settings, `weight_decay=0.004` |
    | `sgd` | `keras.optimizers.SGD(0.01, momentum=0.9)` |
    | `sgd_nesterov`, `sgd_vanilla` | Nesterov momentum 0.9; no momentum |
    | `sgd_momentum_schedule` | `kt.optimizers.SGD`, β rising 0.5→0.99 |
    | `rmsprop` | `keras.optimizers.RMSprop(1e-3, rho=0.9, epsilon=1e-8)` |
    | `adagrad` | `keras.optimizers.Adagrad(0.01)` |
    | `nadam` | `keras.optimizers.Nadam`, Adam settings |
    | `swats`, `lars` | `kt.optimizers.SWATS()`, `kt.optimizers.LARS()` |
    | `lookahead` | `kt.optimizers.Lookahead(Adam)` |
    | `gradient_noise` | `kt.optimizers.GradientNoise(Adam, eta=0.01)` |
    | `radam` | `kt.optimizers.RectifiedAdam()`, Adam settings |
    | `ranger` | `kt.optimizers.Lookahead(RectifiedAdam, sync_period=6)` |

    Args:
        name: One of `names()` (case-insensitive), or an optimizer instance,
            returned unchanged (then `overrides` must be empty).
        **overrides: Constructor arguments that replace the defaults.

    Returns:
        A new `keras.optimizers.Optimizer`.

    Raises:
        ValueError: for an unknown name (the message suggests the closest
            names) or overrides given with an instance.
        TypeError: if `name` is neither a string nor an optimizer.

    Example:

    ```python
    import kerastoolkit as kt
    opt = kt.optimizers.get("karpathy")          # Adam(3e-4)
    opt = kt.optimizers.get("sgd", learning_rate=0.1)
    opt = kt.optimizers.get("lookahead", optimizer="sgd", sync_period=10)
    ```
    """
    if isinstance(name, keras.optimizers.Optimizer):
        if overrides:
            raise ValueError(
                "`overrides` cannot be applied to an optimizer instance. "
                f"Received: overrides={overrides}"
            )
        return name
    if not isinstance(name, str):
        raise TypeError(
            "`name` must be a string or a `keras.optimizers.Optimizer`. "
            f"Received: name={name!r}"
        )
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in OPTIMIZER_DEFAULTS:
        close = difflib.get_close_matches(key, names(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown optimizer name.{hint} Known names: {', '.join(names())}. "
            f"Received: name={name!r}"
        )
    entry = OPTIMIZER_DEFAULTS[key]
    cls = _resolve_class(entry["class"])
    config = dict(entry["config"])
    if isinstance(config.get("momentum"), dict):  # a Keras schedule
        schedule = config["momentum"]
        config["momentum"] = getattr(
            keras.optimizers.schedules, schedule["schedule"]
        )(**schedule["config"])
    if "inner" in entry:
        inner = overrides.pop("optimizer", entry["inner"])
        config["optimizer"] = get(inner) if isinstance(inner, str) else inner
    config.update(overrides)
    return cls(**config)
