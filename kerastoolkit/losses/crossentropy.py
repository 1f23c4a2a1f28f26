"""Cross-entropy with label smoothing in the lecture's or Keras's convention.

Label smoothing replaces the one-hot target of an example of class `y` among
`C` classes by a softer distribution. Two conventions are in use:

| `convention` | true class        | every other class |
| ------------ | ----------------- | ----------------- |
| `"lecture"`  | `1 − ε`           | `ε / (C − 1)`     |
| `"keras"`    | `1 − ε + ε / C`   | `ε / C`           |

(`"keras"` is Szegedy et al.'s uniform mixture `(1 − ε)·onehot + ε/C`, what
`keras.losses.CategoricalCrossentropy(label_smoothing=ε)` does.) Both sum to
one; the lecture's puts exactly `ε` of mass off the true class.
"""

import keras

from kerastoolkit import _checks

CONVENTIONS = ("keras", "lecture")


def _check_convention(convention):
    if convention not in CONVENTIONS:
        raise ValueError(
            f"Argument `convention` must be one of {', '.join(repr(c) for c in CONVENTIONS)}. "
            f"Received: convention={convention!r}"
        )
    return convention


def _target_values(label_smoothing, num_classes, convention):
    """`(on, off)`: the target of the true class and of each other class."""
    eps = label_smoothing
    if convention == "lecture":
        return 1.0 - eps, eps / (num_classes - 1)
    return 1.0 - eps + eps / num_classes, eps / num_classes


def smoothed_targets(y_true, num_classes, label_smoothing=0.0, convention="keras"):
    """Smoothed target distributions for integer labels.

    `t_c = on` for `c = y`, `off` otherwise, with `(on, off)` from the table in
    the module docstring.

    Args:
        y_true: integer labels, any shape.
        num_classes: number of classes `C`, at least 2.
        label_smoothing: `ε` in [0, 1]. Defaults to `0.0`.
        convention: `"keras"` or `"lecture"`. Defaults to `"keras"`.

    Returns:
        A float32 tensor of shape `y_true.shape + (C,)`.

    Example:
    >>> smoothed_targets([0], 3, 0.2, "lecture")  # [[0.8, 0.1, 0.1]]
    """
    _check_convention(convention)
    on, off = _target_values(float(label_smoothing), int(num_classes), convention)
    onehot = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), int(num_classes))
    return onehot * (on - off) + off


def _crossentropy(targets, y_pred, from_logits, axis):
    # Keras's own categorical cross-entropy (probabilities are renormalised and
    # clipped to [eps, 1 - eps]; logits go through log-softmax).
    return keras.losses.categorical_crossentropy(
        targets, y_pred, from_logits=from_logits, label_smoothing=0.0, axis=axis
    )


class _SmoothingMixin:
    def _init_smoothing(self, label_smoothing, convention, from_logits, axis):
        self.label_smoothing = _checks.check_real("label_smoothing", label_smoothing, 0.0, 1.0)
        self.convention = _check_convention(convention)
        if not isinstance(from_logits, bool):
            raise TypeError(
                f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}"
            )
        self.from_logits = from_logits
        if not _checks.is_int(axis):
            raise TypeError(f"Argument `axis` must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)

    def _num_classes(self, y_pred):
        num_classes = y_pred.shape[self.axis]
        if num_classes is None:
            num_classes = keras.ops.shape(y_pred)[self.axis]
        elif self.convention == "lecture" and num_classes < 2 and self.label_smoothing > 0:
            raise ValueError(
                "The lecture's label smoothing spreads ε over C − 1 other classes and "
                f"needs at least 2 classes. Received: y_pred.shape={tuple(y_pred.shape)}"
            )
        return num_classes

    def _smoothing_config(self):
        return {
            "label_smoothing": self.label_smoothing,
            "convention": self.convention,
            "from_logits": self.from_logits,
            "axis": self.axis,
        }


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SparseCategoricalCrossentropy(_SmoothingMixin, keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing.

    `L = −Σ_c t_c · log p_c` with `t` the smoothed target of the integer label
    `y` (`on` on class `y`, `off` on the others):

    - `convention="lecture"`: `on = 1 − ε`, `off = ε / (C − 1)`;
    - `convention="keras"`: `on = 1 − ε + ε / C`, `off = ε / C`.

    With `label_smoothing=0` it is `keras.losses.SparseCategoricalCrossentropy`
    (same clipping of probabilities, same `ignore_class` masking: ignored
    entries weigh nothing and the mean runs over the others).

    Keras 3.15's sparse loss has no `label_smoothing`. Keras's main branch has
    merged one (keras-team/keras, after 3.15) that no release ships yet; this
    class takes every argument by keyword with Keras's names, so switching
    later is a one-line change (check the convention: upstream follows the
    `"keras"` one).

    The default `convention="keras"` gives the same numbers as
    `keras.losses.CategoricalCrossentropy(label_smoothing=ε)` on one-hot
    labels, so that swapping a Keras loss for this one never changes the
    targets silently; pass `convention="lecture"` for the lecture's `ε/(C−1)`.

    It is an ordinary Keras loss: `model.compile(loss=...)`, sample weights,
    `mixed_float16` (computed in the loss's float32 `dtype`), and
    `keras.distillation.Distiller(student_loss=...)` all work.

    Args:
        label_smoothing: `ε` in [0, 1]. Defaults to `0.0`.
        convention: `"keras"` or `"lecture"`. Defaults to `"keras"`.
        from_logits: whether `y_pred` holds logits rather than probabilities.
            Defaults to `False`.
        ignore_class: an integer label whose entries are left out of the loss
            (e.g. a "void" class in segmentation). Defaults to `None`.
        reduction: Keras's loss reduction. Defaults to
            `"sum_over_batch_size"`.
        axis: the class axis of `y_pred`. Defaults to `-1`.
        name: the loss's name. Defaults to
            `"sparse_categorical_crossentropy"`.
        dtype: the dtype the loss is computed in. Defaults to `None` (the
            float type, float32 even under `mixed_float16`).

    Raises:
        ValueError: for `label_smoothing` outside [0, 1] or an unknown
            `convention`.
        TypeError: for a non-integer `ignore_class` or `axis`.

    Example:
    >>> loss = kt.losses.SparseCategoricalCrossentropy(
    ...     label_smoothing=0.1, convention="lecture", from_logits=True)
    >>> model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])

    References:
        Szegedy et al., Rethinking the Inception Architecture for Computer
        Vision, CVPR 2016 (label smoothing). Müller, Kornblith, Hinton, When
        does label smoothing help?, NeurIPS 2019.
    """

    def __init__(
        self,
        label_smoothing=0.0,
        convention="keras",
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._init_smoothing(label_smoothing, convention, from_logits, axis)
        if ignore_class is not None and not _checks.is_int(ignore_class):
            raise TypeError(
                f"Argument `ignore_class` must be an integer or None. Received: ignore_class={ignore_class!r}"
            )
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def _labels(self, y_true, y_pred):
        y_true = keras.ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[self.axis] == 1:
            y_true = keras.ops.squeeze(y_true, axis=self.axis)
        return y_true

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        # Ignored entries get weight 0 and the others `total / valid`, as
        # Keras's own masking does, so the mean runs over the valid entries.
        y_pred = keras.ops.convert_to_tensor(y_pred)
        labels = self._labels(y_true, y_pred)
        valid = keras.ops.cast(keras.ops.not_equal(labels, self.ignore_class), "float32")
        if self.reduction in ("mean", "sum_over_batch_size"):
            total = keras.ops.cast(keras.ops.size(valid), "float32")
            valid = valid * keras.ops.divide_no_nan(total, keras.ops.sum(valid))
        if sample_weight is not None:
            sample_weight = keras.ops.cast(sample_weight, "float32")
            while len(sample_weight.shape) < len(valid.shape):
                sample_weight = keras.ops.expand_dims(sample_weight, -1)
            valid = valid * sample_weight
        return super().__call__(y_true, y_pred, sample_weight=valid)

    def call(self, y_true, y_pred):
        labels = self._labels(y_true, y_pred)
        labels = keras.ops.cast(labels, "int32")
        num_classes = self._num_classes(y_pred)
        if self.ignore_class is not None:
            valid = keras.ops.not_equal(labels, self.ignore_class)
            labels = keras.ops.where(valid, labels, 0)
        eps = self.label_smoothing
        if self.convention == "lecture":
            off = eps / keras.ops.cast(num_classes - 1, y_pred.dtype)
            on = keras.ops.cast(1.0 - eps, y_pred.dtype)
        else:
            off = eps / keras.ops.cast(num_classes, y_pred.dtype)
            on = 1.0 - eps + off
        onehot = keras.ops.one_hot(labels, num_classes, axis=self.axis, dtype=y_pred.dtype)
        targets = onehot * (on - off) + off
        loss = _crossentropy(targets, y_pred, self.from_logits, self.axis)
        if self.ignore_class is not None:
            loss = keras.ops.where(valid, loss, keras.ops.zeros_like(loss))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(self._smoothing_config())
        config["ignore_class"] = self.ignore_class
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class CategoricalCrossentropy(_SmoothingMixin, keras.losses.Loss):
    """Categorical cross-entropy (one-hot targets) with a choice of label smoothing.

    `L = −Σ_c t_c · log p_c` with the smoothed targets

    - `convention="lecture"`: `t = y·(1 − ε) + (1 − y)·ε / (C − 1)`;
    - `convention="keras"`: `t = y·(1 − ε) + ε / C`, exactly
      `keras.losses.CategoricalCrossentropy(label_smoothing=ε)`.

    For a one-hot `y` these are the targets of the table in
    `SparseCategoricalCrossentropy`. The default is `"keras"` so that it is a
    drop-in replacement of Keras's loss; pass `convention="lecture"` for the
    lecture's `ε/(C−1)`.

    Args:
        label_smoothing: `ε` in [0, 1]. Defaults to `0.0`.
        convention: `"keras"` or `"lecture"`. Defaults to `"keras"`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        reduction: Keras's loss reduction. Defaults to `"sum_over_batch_size"`.
        axis: the class axis. Defaults to `-1`.
        name: the loss's name. Defaults to `"categorical_crossentropy"`.
        dtype: the dtype the loss is computed in. Defaults to `None` (float32).

    Raises:
        ValueError: for `label_smoothing` outside [0, 1] or an unknown
            `convention`.

    Example:
    >>> loss = kt.losses.CategoricalCrossentropy(label_smoothing=0.1, convention="lecture")
    >>> model.compile(optimizer="adam", loss=loss)

    References:
        Szegedy et al., Rethinking the Inception Architecture for Computer
        Vision, CVPR 2016.
    """

    def __init__(
        self,
        label_smoothing=0.0,
        convention="keras",
        from_logits=False,
        reduction="sum_over_batch_size",
        axis=-1,
        name="categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._init_smoothing(label_smoothing, convention, from_logits, axis)

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        num_classes = self._num_classes(y_pred)
        eps = self.label_smoothing
        if eps:
            if self.convention == "lecture":
                off = eps / keras.ops.cast(num_classes - 1, y_pred.dtype)
                y_true = y_true * (1.0 - eps) + (1.0 - y_true) * off
            else:
                y_true = y_true * (1.0 - eps) + eps / keras.ops.cast(num_classes, y_pred.dtype)
        return _crossentropy(y_true, y_pred, self.from_logits, self.axis)

    def get_config(self):
        config = super().get_config()
        config.update(self._smoothing_config())
        return config
