"""`PreciseBatchNorm`: recompute BatchNorm population statistics on training data."""

import keras
import numpy as np

from kerastoolkit import _callback_common as _common


def _batchnorm_layers(layer, found=None, seen=None):
    """Every `keras.layers.BatchNormalization` inside `layer`, depth first."""
    found = [] if found is None else found
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return found
    seen.add(id(layer))
    if isinstance(layer, keras.layers.BatchNormalization):
        found.append(layer)
    for child in list(getattr(layer, "layers", None) or []) + [getattr(layer, "layer", None)]:
        if isinstance(child, keras.layers.Layer):
            _batchnorm_layers(child, found, seen)
    return found


def _input_batches(data, num_batches, batch_size, seed=0):
    """Yields at most `num_batches` input batches from arrays or a dataset.

    Array rows are sampled at random (without replacement while rows last,
    seeded), not taken in order: sorted data would give biased statistics.
    """
    if isinstance(data, (tuple, list)) and data and not np.isscalar(data[0]):
        first = data[0]
        if hasattr(first, "shape") and len(data) in (1, 2, 3):
            data = first  # (x, y[, sample_weight])
    if hasattr(data, "shape") and hasattr(data, "__getitem__") and not hasattr(
        data, "element_spec"
    ):  # an array or a tensor (a `tf.data.Dataset` has `element_spec`)
        size = batch_size or 32
        n = len(data)
        if n == 0:
            return
        rng = np.random.default_rng(seed)
        order = np.concatenate(
            [rng.permutation(n) for _ in range(-(-num_batches * size // n))]
        )
        for k in range(num_batches):
            rows = np.sort(order[k * size : (k + 1) * size])
            yield data[rows] if isinstance(data, np.ndarray) else keras.ops.take(
                data, rows, axis=0
            )
        return
    count = 0
    for element in data:
        if count >= num_batches:
            return
        if isinstance(element, (tuple, list)):
            element = element[0]
        if isinstance(element, dict) and "x" in element:
            element = element["x"]
        yield element
        count += 1


def recompute_batchnorm_statistics(model, data, num_batches=50, batch_size=None, seed=0):
    """Sets every BatchNorm's moving mean/variance to training-set statistics.

    With batches `B_1 … B_K` of training inputs run through the model in
    training mode, each BatchNormalization layer's statistics become

    ```
    moving_mean     = 1/K Σ_k mean(B_k)
    moving_variance = 1/K Σ_k var(B_k)
    ```

    (the averages of the per-batch statistics, as in "precise BN", Wu &
    Johnson 2021), in place of the exponential moving averages collected
    while the weights were still changing. The averages are accumulated by
    setting each layer's `momentum` to `k/(k+1)` for the `k`-th batch (the
    original momentum is put back afterwards). The calls run eagerly in the
    cross-replica context, so under a `tf.distribute` strategy every replica's
    copy of the statistics receives the same values.

    Args:
        model: a built Keras model (BatchNorm layers may be nested).
        data: training inputs: an array, an `(x, y)` tuple of arrays, a
            `tf.data.Dataset` of batches (`x` or `(x, y, ...)`) or any
            iterable of batches.
        num_batches: int >= 1, `K`. Defaults to `50`.
        batch_size: int >= 1, batch size for array inputs. Defaults to
            `None` (32).
        seed: int, seed of the random rows drawn from array inputs (datasets
            are read in their own order). Defaults to `0`.

    Returns:
        The number of batches used (0 when the model has no BatchNorm).

    Raises:
        ValueError: if `data` yields no batch.
    """
    num_batches = _common.check_int("num_batches", num_batches, 1)
    batch_size = _common.check_int("batch_size", batch_size, 1, allow_none=True)
    seed = _common.check_int("seed", seed, 0)
    layers = _batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for k, batch in enumerate(_input_batches(data, num_batches, batch_size, seed)):
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(batch, training=True)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if used == 0:
        raise ValueError(
            "`data` gave no batch to recompute the BatchNorm statistics from. "
            f"Received: data={type(data).__name__}"
        )
    return used


@keras.saving.register_keras_serializable(package="kerastoolkit")
class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes BatchNorm population statistics on training batches.

    The lecture's rule for batch norm at test time is to use the statistics
    of the training set, but Keras's layers keep an exponential moving
    average of batch statistics collected while the weights were changing,
    and under `tf.distribute.MirroredStrategy` each replica keeps its own
    copy, so the copies drift apart and `model.predict` (replica copies),
    `model(x, training=False)` (the first copy) and an exported SavedModel
    disagree. At the end of training (or of every epoch) this callback sets

    ```
    moving_mean = 1/K Σ_k mean(B_k),   moving_variance = 1/K Σ_k var(B_k)
    ```

    over `K = num_batches` batches of `data` run in training mode, in every
    replica's copy (see `recompute_batchnorm_statistics`).

    With `frequency="epoch"` the recomputation happens in `on_epoch_end`,
    i.e. after that epoch's validation; list it before callbacks that save
    the model (`ModelCheckpoint`, `BackupAndRestore`).

    Args:
        data: training inputs: arrays, `(x, y)`, a `tf.data.Dataset` or an
            iterable of batches; `None` only to set `callback.data` before
            `fit` (a callback rebuilt `from_config`, which holds no data).
            Defaults to `None`.
        num_batches: int >= 1, `K`. Defaults to `50`.
        batch_size: int >= 1, batch size for array inputs. Defaults to
            `None` (32).
        frequency: `"end"` (once, when training ends) or `"epoch"`.
            Defaults to `"end"`.
        seed: int >= 0, seed of the random rows drawn from array inputs
            (random rows, not the first ones: sorted data would bias the
            statistics). Defaults to `0`.

    Raises:
        ValueError: for `num_batches < 1` or an unknown `frequency`; when
            training starts with `data` still `None`.

    Example:

    ```python
    with strategy.scope():
        model = make_model()
        model.compile(...)
    model.fit(ds, epochs=10, callbacks=[kt.callbacks.PreciseBatchNorm(ds, num_batches=100)])
    model.export("served")  # predict, model(x) and the SavedModel now agree
    ```

    References:
        - [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167), "Batch
          Normalization", Algorithm 2 (population statistics at inference).
        - [Wu & Johnson, 2021](https://arxiv.org/abs/2105.07576), "Rethinking
          'Batch' in BatchNorm" (precise BN).
    """

    def __init__(self, data=None, num_batches=50, batch_size=None, frequency="end", seed=0):
        super().__init__()
        self.data = data
        self.num_batches = _common.check_int("num_batches", num_batches, 1)
        self.batch_size = _common.check_int("batch_size", batch_size, 1, allow_none=True)
        if frequency not in ("end", "epoch"):
            raise ValueError(
                f"Argument `frequency` must be 'end' or 'epoch'. Received: frequency={frequency!r}"
            )
        self.frequency = frequency
        self.seed = _common.check_int("seed", seed, 0)

    def on_train_begin(self, logs=None):
        if self.data is None:
            raise ValueError(
                "`PreciseBatchNorm` needs training inputs to recompute the "
                "statistics from. Received: data=None"
            )

    def _recompute(self):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        recompute_batchnorm_statistics(
            self.model, self.data, self.num_batches, self.batch_size, self.seed
        )

    def on_epoch_end(self, epoch, logs=None):
        if self.frequency == "epoch":
            self._recompute()

    def on_train_end(self, logs=None):
        if self.frequency == "end":
            self._recompute()

    def get_config(self):
        return {
            "num_batches": self.num_batches,
            "batch_size": self.batch_size,
            "frequency": self.frequency,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
