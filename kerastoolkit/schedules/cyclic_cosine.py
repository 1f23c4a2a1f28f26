"""`CyclicCosine`: the snapshot-ensemble schedule of Huang et al. (2017)."""

import math

import keras
from keras import ops

from kerastoolkit.schedules import _base


@keras.saving.register_keras_serializable(package="kerastoolkit")
class CyclicCosine(_base.EpochSchedule):
    """Cyclic cosine annealing with `cycles` restarts (snapshot ensembles).

    With `T = total`, `M = cycles` and the cycle length `L = ceil(T / M)`:

    ```
    learning_rate(t) = initial_learning_rate / 2 * (cos(pi * mod(t, L) / L) + 1)
    ```

    `t` is the optimizer step, or `floor(step / steps_per_epoch)` when
    `steps_per_epoch` is given. Each cycle starts at `η0` and anneals towards
    0; the end of each cycle (`t = k·L − 1`) is where Huang et al. take a
    snapshot of the model. Past `total` the schedule keeps cycling.

    Args:
        initial_learning_rate: A float >= 0, `η0`, the rate at each restart.
        total: An int >= 1, `T`: the training budget in steps (or epochs).
        cycles: An int with `1 <= cycles <= total`, `M`: the number of cycles
            (snapshots) in `total`.
        steps_per_epoch: An int >= 1 or `None`. When given, `t` and `total`
            count epochs. Defaults to `None`.
        name: String, the name scope of the computation. Defaults to
            `"CyclicCosine"`.

    Returns:
        A 1-arg callable learning rate schedule that takes the current optimizer
        step and returns the learning rate, a scalar float tensor.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if `initial_learning_rate` is negative, `total < 1`,
            `cycles < 1`, `cycles > total` or `steps_per_epoch < 1`.

    Example:

    ```python
    # 6 snapshots in 300 epochs, as in the paper's CIFAR runs.
    schedule = kt.schedules.CyclicCosine(
        0.2, total=300, cycles=6, steps_per_epoch=391
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    ```

    References:
        - [Huang et al., 2017](https://arxiv.org/abs/1704.00109), "Snapshot
          Ensembles: Train 1, get M for free", Eq. (2).
    """

    def __init__(
        self,
        initial_learning_rate,
        total,
        cycles,
        steps_per_epoch=None,
        name="CyclicCosine",
    ):
        super().__init__(steps_per_epoch, _base.check_name(name, "CyclicCosine"))
        self.initial_learning_rate = _base.check_learning_rate(
            "initial_learning_rate", initial_learning_rate
        )
        self.total = _base.check_positive_int("total", total)
        self.cycles = _base.check_positive_int("cycles", cycles)
        if self.cycles > self.total:
            raise ValueError(
                "Argument `cycles` must be at most `total` "
                f"({self.total}), so that every cycle has at least one step. "
                f"Received: cycles={self.cycles}"
            )

    @property
    def cycle_length(self):
        """`ceil(total / cycles)`, in steps (or epochs with `steps_per_epoch`)."""
        return -(-self.total // self.cycles)

    def _t(self, step):
        # The position inside the current cycle, computed on integers.
        return ops.mod(super()._t(step), self.cycle_length)

    def _value(self, position, dtype):
        lr = ops.cast(self.initial_learning_rate, dtype)
        angle = ops.multiply(math.pi / self.cycle_length, position)
        return ops.multiply(ops.multiply(0.5, lr), ops.add(ops.cos(angle), 1.0))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total": self.total,
            "cycles": self.cycles,
            "steps_per_epoch": self.steps_per_epoch,
            "name": self.name,
        }
