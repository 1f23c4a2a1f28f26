"""Learning-rate schedules Keras lacks, as `LearningRateSchedule` subclasses.

Every schedule is a function of `t`: the optimizer step, or the epoch
`floor(step / steps_per_epoch)` when `steps_per_epoch` is given.

- `Exponential`, `InverseTime`, `InverseSqrt`, `Linear`, `Cosine`,
  `StepDecay`: the lecture's decay schedules.
- `Warmup(schedule, warmup_steps)`: a linear warmup in front of any schedule
  (ours, Keras's or a float).
- `CyclicCosine`: the snapshot-ensemble schedule (Huang et al. 2017).
- `OneCycle`: Smith's one-cycle policy.
- `Triangular`, `Triangular2`, `ExponentialRange`, `Cyclical`: Smith's
  cyclical learning rates (tfa's `*CyclicalLearningRate`).
- `Scaled(schedule, multiplier)`: a schedule times a factor that can change
  during training (the hook for plateau decay).
"""

from kerastoolkit.schedules.cyclic_cosine import CyclicCosine
from kerastoolkit.schedules.cyclical import Cyclical
from kerastoolkit.schedules.cyclical import ExponentialRange
from kerastoolkit.schedules.cyclical import Triangular
from kerastoolkit.schedules.cyclical import Triangular2
from kerastoolkit.schedules.decay import Cosine
from kerastoolkit.schedules.decay import Exponential
from kerastoolkit.schedules.decay import InverseSqrt
from kerastoolkit.schedules.decay import InverseTime
from kerastoolkit.schedules.decay import Linear
from kerastoolkit.schedules.decay import StepDecay
from kerastoolkit.schedules.one_cycle import OneCycle
from kerastoolkit.schedules.scaled import Scaled
from kerastoolkit.schedules.warmup import Warmup

__all__ = [
    "Cosine",
    "CyclicCosine",
    "Cyclical",
    "ExponentialRange",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "OneCycle",
    "Scaled",
    "StepDecay",
    "Triangular",
    "Triangular2",
    "Warmup",
]
