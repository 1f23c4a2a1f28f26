"""Optimizers Keras lacks, built on `keras.optimizers.Optimizer`.

Keras already ships SGD, Adagrad, RMSprop, Adam, AdamW and decoupled
`weight_decay` for every optimizer; `get` gives those by name with the
lecture's defaults. Built here:

- `SGD`: momentum that may follow a schedule (`β(t)`).
- `SWATS`: Adam that switches to SGD (Keskar & Socher 2017).
- `Lookahead`: slow/fast weights around any optimizer (Zhang et al. 2019).
- `LARS`: layer-wise trust ratios for large batches (You et al. 2017).
- `GradientNoise`: annealed Gaussian gradient noise (Neelakantan et al. 2015).
- `RectifiedAdam`: variance-rectified Adam, RAdam (Liu et al. 2020).
- `get`: optimizers by name; `bakeoff`: compare several from the same start
  (Schmidt et al. 2021).
"""

from kerastoolkit.optimizers.bakeoff import BakeoffEntry
from kerastoolkit.optimizers.bakeoff import BakeoffResult
from kerastoolkit.optimizers.bakeoff import bakeoff
from kerastoolkit.optimizers.gradient_noise import GradientNoise
from kerastoolkit.optimizers.lars import LARS
from kerastoolkit.optimizers.lookahead import Lookahead
from kerastoolkit.optimizers.rectified_adam import RectifiedAdam
from kerastoolkit.optimizers.registry import OPTIMIZER_DEFAULTS
from kerastoolkit.optimizers.registry import get
from kerastoolkit.optimizers.registry import names
from kerastoolkit.optimizers.sgd import SGD
from kerastoolkit.optimizers.swats import SWATS

__all__ = [
    "BakeoffEntry",
    "BakeoffResult",
    "GradientNoise",
    "LARS",
    "Lookahead",
    "OPTIMIZER_DEFAULTS",
    "RectifiedAdam",
    "SGD",
    "SWATS",
    "bakeoff",
    "get",
    "names",
]
