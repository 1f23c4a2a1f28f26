"""`StepRecorder`: each training step's own loss, batch size and labels, exactly.

Keras passes callbacks the epoch's running mean of the loss, weighted by
batch size, and with `steps_per_execution > 1` only every n-th step. The
recorder wraps the model's `train_step` (the documented override point, set
on the instance and removed afterwards) so that every step writes, into a
small ring buffer of variables on the device:

- its own loss `ℓ_k = ΔS / Δn`, the increments over the step of the loss
  tracker's sum `S = Σ n_i·ℓ_i` and count `n` (exact for a partial last
  batch, every step also inside one `steps_per_execution` call);
- its batch size `n_k`;
- the sum and the sum of squares of its labels (class index for one-hot
  labels, the target itself otherwise), from which the data-order checks see
  sorted data;
- optionally (NaN capture) a copy of the first batch whose loss is not finite.

`drain()` returns what was written since the last drain. It must run between
steps in the thread that calls `fit` (`on_train_batch_begin`,
`on_epoch_end`, `on_train_end`), never in an asynchronous batch-end hook.
TensorFlow backend, one replica; elsewhere `supported()` says why not and the
callers fall back to the running mean.
"""

import numpy as np

import keras

from kerastoolkit import _keras_compat

_FIELDS = ("loss", "size", "label_sum", "label_sq_sum")


def unsupported_reason(model):
    """Why the recorder cannot run on `model`, or `None` when it can."""
    if keras.backend.backend() != "tensorflow":
        return f"the {keras.backend.backend()} backend"
    try:
        if model.distribute_strategy.num_replicas_in_sync != 1:
            return "more than one replica"
    except (AttributeError, ValueError):
        return "no distribution strategy"
    try:
        if _keras_compat.loss_tracker_variables(model) is None:
            return "no Keras loss tracker (not compiled)"
    except RuntimeError as error:
        return str(error)
    return None


def _label_stats(tf, data):
    """`(sum, sum of squares)` of the batch's labels, NaN when there are none."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    nan = tf.constant(np.nan, "float64")
    if y is None or not hasattr(y, "shape") or isinstance(y, (dict, list, tuple)):
        return nan, nan
    y = tf.convert_to_tensor(y)
    if y.shape.rank is None or y.shape.rank == 0:
        return nan, nan
    if y.shape.rank >= 2 and y.shape[-1] is not None and y.shape[-1] > 1:
        value = tf.cast(tf.argmax(y, axis=-1), "float64")  # one-hot: the class
    else:
        value = tf.cast(y, "float64")
    value = tf.reshape(value, [tf.shape(value)[0], -1])
    value = tf.reduce_mean(value, axis=1)
    return tf.reduce_sum(value), tf.reduce_sum(tf.square(value))


class StepRecorder:
    """Records every training step's own loss inside `train_step`.

    Args:
        capture_nan: also keep a copy of the first batch whose loss is not
            finite (non-XLA only). Defaults to `False`.
        capacity: steps the ring buffer holds between two drains.
            Defaults to `512`.
    """

    def __init__(self, capture_nan=False, capacity=512):
        self.capture_nan = bool(capture_nan)
        self.capacity = int(capacity)
        self.model = None
        self.fit = None  # the `params` of the `fit` it was installed for
        self._holder = None
        self._drained = 0

    def install(self, model, fit=None):
        """Wraps `model.train_step`; returns `False` (nothing done) when unsupported.

        One recorder per model: within one `fit` (`fit`, the `params` dict
        Keras gives that call's callbacks) the first callback owns it. A
        recorder left by another `fit` (one that stopped on an exception, so
        its callback never reached `on_train_end`) is removed first.
        """
        if unsupported_reason(model) is not None:
            return False
        current = getattr(model, "_kt_step_recorder", None)
        if current is not None:
            if fit is None or current.fit is fit:
                return False
            current.uninstall()
        import tensorflow as tf

        self.capacity = max(self.capacity, 4 * int(getattr(model, "steps_per_execution", 1) or 1))
        capture = self.capture_nan and not model.jit_compile
        original = model.train_step
        total, count = _keras_compat.loss_tracker_variables(model)
        holder = {"buffers": None, "counter": None, "nan_vars": None, "nan_flag": None,
                  "structure": None}
        capacity = self.capacity

        def train_step(data):
            if holder["buffers"] is None:
                with tf.init_scope():
                    holder["buffers"] = {
                        name: tf.Variable(tf.zeros([capacity], "float64"), trainable=False)
                        for name in _FIELDS
                    }
                    holder["counter"] = tf.Variable(tf.constant(0, "int64"), trainable=False)
            s0 = tf.cast(tf.convert_to_tensor(total), "float64")
            n0 = tf.cast(tf.convert_to_tensor(count), "float64")
            logs = original(data)
            s1 = tf.cast(tf.convert_to_tensor(total), "float64")
            n1 = tf.cast(tf.convert_to_tensor(count), "float64")
            size = n1 - n0
            own = tf.math.divide_no_nan(s1 - s0, size)
            own = tf.where(tf.math.is_finite(s1), own, s1)  # a NaN stays NaN
            label_sum, label_sq = _label_stats(tf, data)
            index = tf.math.floormod(holder["counter"], capacity)
            for name, value in zip(_FIELDS, (own, size, label_sum, label_sq)):
                holder["buffers"][name].scatter_nd_update([[index]], [value])
            holder["counter"].assign_add(1)
            if capture:
                _capture(tf, holder, data, own)
            return logs

        _keras_compat.wrap_train_step(model, lambda _original: train_step)  # fit retraces with it
        model._kt_step_recorder = self
        self.model = model
        self.fit = fit
        self._holder = holder
        self._drained = 0
        return True

    @property
    def installed(self):
        return self._holder is not None

    def drain(self):
        """Per-step records written since the last drain.

        Returns:
            A dict of float64 arrays `loss`, `size`, `label_sum`,
            `label_sq_sum` (one entry per step, in order) and `lost`, the
            number of steps overwritten before they were drained.
        """
        empty = {name: np.zeros(0) for name in _FIELDS}
        empty["lost"] = 0
        if self._holder is None or self._holder["counter"] is None:
            return empty
        count = int(self._holder["counter"].numpy())
        new = count - self._drained
        lost = max(0, new - self.capacity)
        first = count - min(new, self.capacity)
        idx = np.arange(first, count) % self.capacity
        out = {
            name: self._holder["buffers"][name].numpy()[idx] for name in _FIELDS
        }
        out["lost"] = lost
        self._drained = count
        return out

    def uninstall(self):
        """Removes the wrapper; returns the captured non-finite batch or `None`."""
        holder, model = self._holder, self.model
        if holder is None:
            return None
        self._holder = None
        batch = None
        if holder["nan_flag"] is not None and bool(holder["nan_flag"].numpy()):
            leaves = [None if v is None else v.numpy() for v in holder["nan_vars"]]
            batch = keras.tree.pack_sequence_as(holder["structure"], leaves)
        _keras_compat.unwrap_train_step(model)
        model._kt_step_recorder = None
        return batch


def _capture(tf, holder, data, loss):
    """Keeps a copy of the first batch whose loss is not finite."""
    leaves = tf.nest.flatten(data)
    if holder["nan_vars"] is None:
        with tf.init_scope():
            holder["nan_vars"] = [
                None if t is None else tf.Variable(
                    tf.zeros([0] * t.shape.rank, t.dtype),
                    shape=tf.TensorShape(None), trainable=False,
                )
                for t in leaves
            ]
            holder["nan_flag"] = tf.Variable(False, trainable=False)
            holder["structure"] = tf.nest.map_structure(lambda _: 0, data)

    def capture():
        def store():
            for v, t in zip(holder["nan_vars"], leaves):
                if v is not None:
                    v.assign(t)
            holder["nan_flag"].assign(True)
            return tf.constant(True)

        return tf.cond(holder["nan_flag"], lambda: tf.constant(False), store)

    tf.cond(tf.math.is_finite(loss), lambda: tf.constant(False), capture)
