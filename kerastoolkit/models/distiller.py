"""Knowledge distillation (Hinton et al. 2015): `Distiller`, `DistillationLoss`, `soft_targets`."""

import copy

import keras
from keras import ops

from kerastoolkit import _checks

_OUTPUT_KINDS = ("logits", "probabilities")
_EPSILON = 1e-7


def _check_outputs_kind(name, value):
    if value not in _OUTPUT_KINDS:
        raise ValueError(
            f"Argument `{name}` must be one of {_OUTPUT_KINDS}. Received: {name}={value!r}"
        )
    return value


def _check_temperature(temperature):
    return _checks.check_real("temperature", temperature, low=0.0, low_open=True)


def _log_softened(outputs, kind, temperature):
    """`log softmax(z / T)` where `z` is the logits, or `log p` for probabilities.

    For probabilities `p`, `log p` equals the logits up to a constant per
    example, which softmax ignores: `softmax(log p / T) = p^(1/T) / Σ p^(1/T)`.
    """
    outputs = ops.cast(outputs, "float32")
    if kind == "probabilities":
        outputs = ops.log(ops.clip(outputs, _EPSILON, 1.0))
    return ops.log_softmax(ops.divide(outputs, temperature), axis=-1)


def _members(teacher):
    """(models, kind-or-None, weights) of an ensemble teacher, or None for a single model.

    `weights` are the `Ensemble`'s normalized member weights (equal for a
    list of models).
    """
    from kerastoolkit.models.ensemble import Ensemble

    if isinstance(teacher, Ensemble):
        members = list(teacher.members)
        kind = "logits" if teacher.from_logits else "probabilities"
        return members, kind, _normalized(teacher.member_weights, len(members))
    if isinstance(teacher, (list, tuple)):
        return list(teacher), None, _normalized(None, len(teacher))
    return None


def _normalized(weights, count):
    weights = [1.0] * count if weights is None else [float(w) for w in weights]
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


@keras.saving.register_keras_serializable(package="kerastoolkit")
class DistillationLoss(keras.losses.Loss):
    """Hinton et al.'s soft-target loss: `T² · KL(q ‖ softmax(s / T))` per example.

    `y_true` is the teacher's softened distribution `q = softmax(t / T)`
    (what `kt.models.soft_targets` stores), `y_pred` the student's output
    `s` (logits, or probabilities when `from_logits=False`). The `T²` factor
    keeps the gradient's size independent of `T` (Hinton et al., §2), so
    the term can be mixed with the hard-label loss at any temperature. It is
    an ordinary `keras.losses.Loss`: sample weights, the
    `"sum_over_batch_size"` reduction and `tf.distribute` scaling are
    Keras's.

    ```
    loss_i = T² · Σ_c q_ic · (log q_ic − log softmax(s_i / T)_c)
    ```

    Args:
        temperature: softening temperature `T > 0`. Defaults to `4.0`.
        from_logits: whether the student outputs logits. With `False`, its
            probabilities `p` are softened as `softmax(log p / T)`.
            Defaults to `True`.
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`.
        name: loss name. Defaults to `"distillation_loss"`.
        dtype: loss dtype. Defaults to `None`.

    Raises:
        ValueError: if `temperature <= 0`.
        TypeError: if `from_logits` is not a bool.

    Example:
    >>> q = kt.models.soft_targets(teacher, x_train, temperature=4.0)
    >>> student.compile("adam", loss=kt.models.DistillationLoss(4.0))
    >>> student.fit(x_train, q, epochs=5)

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531),
          "Distilling the Knowledge in a Neural Network".
    """

    def __init__(
        self,
        temperature=4.0,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="distillation_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        if not isinstance(from_logits, bool):
            raise TypeError(
                f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}"
            )
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        q = ops.stop_gradient(ops.cast(y_true, "float32"))
        kind = "logits" if self.from_logits else "probabilities"
        log_p = _log_softened(y_pred, kind, self.temperature)
        log_q = ops.log(ops.clip(q, _EPSILON, 1.0))
        kl = ops.sum(ops.where(q > 0, q * (log_q - log_p), 0.0), axis=-1)
        return ops.multiply(kl, self.temperature**2)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "from_logits": self.from_logits})
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Distiller(keras.Model):
    """Trains a student on hard labels and a teacher's soft targets.

    The loss per example, with hard-label loss `CE` (the one given to
    `compile`), student logits `s` and teacher logits `t`, is

    ```
    L = α · CE(y, s) + (1 − α) · T² · KL(softmax(t / T) ‖ softmax(s / T))
    ```

    averaged over the batch with the sample weights (Keras's
    `"sum_over_batch_size"`), plus the student's regularization losses.
    Under `tf.distribute` each replica divides by the global batch, as
    Keras's own losses do. The teacher is one of:

    - a `keras.Model` (frozen: `trainable=False`, called with
      `training=False`; its weights are bit-identical after `fit`);
    - a `kt.models.Ensemble` or a list of models: `softmax(t/T)` is replaced
      by the average of the members' softened distributions, weighted by
      the `Ensemble`'s `weights` (`Σ_m w_m · softmax(t_m / T) / Σ_m w_m`, as
      the ensemble itself averages; equal weights for a list);
    - `None`: the student learns from stored soft targets, fitting on
      `(x, (y, q))` with `q = kt.models.soft_targets(teacher, x, T)`
      (the teacher need not be in memory; a black-box teacher that only
      returns probabilities goes this way too).

    `teacher_outputs` says whether the teacher gives logits or
    probabilities (a flag, never a guess); `student_outputs` the same for
    the student. Probabilities `p` are softened as `softmax(log p / T)`.

    **Relation to `keras.distillation.Distiller`.** `alpha` is Keras's
    `student_loss_weight` (Keras mixes `w·student + (1 − w)·distillation`),
    and with `distillation_losses=LogitsDistillation(T, loss=KLDivergence())`
    Keras computes `T²·KL` too. This class does not subclass or wrap it:
    Keras's `compute_loss` ignores `sample_weight` and always calls a live
    teacher model (no stored soft targets, no ensembles of distributions),
    and its default `loss="kl_divergence"` drops the softmax and `T²`; what
    is left to reuse is a `Model` subclass, so this builds on `keras.Model`
    directly and keeps Keras's compile machinery for the hard loss.

    Validation: `evaluate` and `validation_data` take `(x, y)` with a live
    teacher. Without a teacher, `(x, (y, q))` gives the full loss, and
    plain `(x, y)` gives the hard-label term `α · CE(y, s)` alone (training
    needs the soft targets).

    Args:
        teacher: a trained `keras.Model`, a `kt.models.Ensemble`, a list of
            models, or `None` for stored soft targets.
        student: the `keras.Model` to train; `distiller.student` is the
            trained model to export.
        temperature: softening temperature `T > 0`. Defaults to `4.0`.
        alpha: weight `α ∈ [0, 1]` of the hard-label loss. Defaults to
            `0.1`.
        teacher_outputs: `"logits"` or `"probabilities"` (for a
            `kt.models.Ensemble` its `from_logits` decides). Defaults to
            `"logits"`.
        student_outputs: `"logits"` or `"probabilities"`. The loss given to
            `compile` must match it. Defaults to `"logits"`.
        name: model name. Defaults to `"distiller"`.

    Raises:
        ValueError: for `temperature <= 0`, `alpha` outside [0, 1], an unknown
            outputs kind, or a teacher whose number of classes differs from
            the student's.
        TypeError: for a student or teacher that is not a Keras model.

    Example:

    ```python
    distiller = kt.models.Distiller(teacher=teacher, student=student,
                                    temperature=4.0, alpha=0.1)
    distiller.compile("adam",
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    distiller.fit(x_train, y_train, epochs=5)
    kt.export.saved_model(distiller.student, "savedmodels/student")
    ```

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531),
          "Distilling the Knowledge in a Neural Network".
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=4.0,
        alpha=0.1,
        teacher_outputs="logits",
        student_outputs="logits",
        name="distiller",
        **kwargs,
    ):
        # `**kwargs` only carries Keras's own model arguments (`trainable`,
        # `dtype`) that `keras.Model.from_config` passes back.
        super().__init__(name=name, **kwargs)
        if not isinstance(student, keras.Model):
            raise TypeError(
                f"Argument `student` must be a keras.Model. Received: student={student!r}"
            )
        self.temperature = _check_temperature(temperature)
        self.alpha = _checks.check_real("alpha", alpha, low=0.0, high=1.0)
        self.teacher_outputs = _check_outputs_kind("teacher_outputs", teacher_outputs)
        self.student_outputs = _check_outputs_kind("student_outputs", student_outputs)
        members = _members(teacher)
        if teacher is not None:
            models = members[0] if members is not None else [teacher]
            if not models:
                raise ValueError(f"Argument `teacher` is an empty list. Received: teacher={teacher!r}")
            for i, model in enumerate(models):
                if not isinstance(model, keras.Model):
                    raise TypeError(
                        "Argument `teacher` must be a keras.Model, a kt.models.Ensemble, a "
                        "list of models or None (a black-box teacher goes through "
                        f"kt.models.soft_targets). Received: teacher={model!r}"
                    )
                _check_same_classes(model, student, i if members is not None else None)
            for model in models:
                model.trainable = False
        self.teacher = teacher
        self.student = student
        self._distillation = DistillationLoss(
            self.temperature, from_logits=self.student_outputs == "logits"
        )

    # ---------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def build(self, input_shape):
        if not self.student.built:
            self.student.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.student.compute_output_shape(input_shape)

    def teacher_soft_targets(self, x):
        """The teacher's softened distribution `softmax(t / T)` for a batch `x`."""
        if self.teacher is None:
            raise ValueError(
                "This Distiller has no teacher: pass soft targets as y=(labels, soft_targets). "
                "Received: teacher=None"
            )
        members = _members(self.teacher)
        if members is None:
            models, kind, weights = [self.teacher], self.teacher_outputs, [1.0]
        else:
            models, kind, weights = members[0], members[1] or self.teacher_outputs, members[2]
        total = None
        for model, weight in zip(models, weights):
            q = ops.exp(_log_softened(model(x, training=False), kind, self.temperature))
            q = ops.multiply(q, weight)
            total = q if total is None else total + q
        return ops.stop_gradient(total)

    # ------------------------------------------------------------- training
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, **kwargs):
        """Configures training; `loss` is the hard-label loss `CE` (any Keras loss).

        Args:
            optimizer: optimizer of the student. Defaults to `"rmsprop"`.
            loss: hard-label loss, e.g.
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`
                or a label-smoothed loss; it must match `student_outputs`.
            metrics: metrics of the student's output against the labels.
                Defaults to `None`.
            loss_weights: must be `None` or `alpha` (the weight of the hard
                loss is `alpha`; Keras passes it back when reloading).
                Defaults to `None`.
            **kwargs: other `keras.Model.compile` arguments.

        Raises:
            ValueError: for a missing `loss` or `loss_weights` other than `alpha`.
        """
        if loss is None:
            raise ValueError(
                "Argument `loss` (the hard-label loss) is required. Received: loss=None"
            )
        if loss_weights is not None and loss_weights != self.alpha:
            raise ValueError(
                "Argument `loss_weights` is set by the Distiller to `alpha`. "
                f"Received: loss_weights={loss_weights!r}"
            )
        # Keras weights the compiled loss by `alpha` and adds the student's
        # regularization losses unweighted.
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=self.alpha, **kwargs
        )

    def compile_from_config(self, config):
        """Recompiles a reloaded Distiller from `get_compile_config()`."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _split_targets(self, y):
        if isinstance(y, (list, tuple)) and len(y) == 2:
            return y[0], y[1]
        return y, None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, q = self._split_targets(y)
        if y_pred is None:
            y_pred = self(x, training=training)
        # α · CE (Keras's compiled loss, sample-weighted, scaled for the
        # global batch) + the student's regularization losses.
        hard = super().compute_loss(x, labels, y_pred, sample_weight, training=training)
        if self.alpha == 1.0:
            return hard
        if q is None:
            if self.teacher is None:
                if training:
                    raise ValueError(
                        "Without a teacher, training needs the stored soft targets: "
                        "fit on (x, (y, soft_targets)). Received: y without soft targets"
                    )
                return hard
            q = self.teacher_soft_targets(x)
        soft = self._distillation(q, y_pred, sample_weight=sample_weight)
        return hard + (1.0 - self.alpha) * soft

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = self._split_targets(y)
        return super().compute_metrics(x, labels, y_pred, sample_weight)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        teacher = self.teacher
        if isinstance(teacher, (list, tuple)):
            teacher = [keras.saving.serialize_keras_object(m) for m in teacher]
        elif teacher is not None:
            teacher = keras.saving.serialize_keras_object(teacher)
        config.update(
            {
                "teacher": teacher,
                "student": keras.saving.serialize_keras_object(self.student),
                "temperature": self.temperature,
                "alpha": self.alpha,
                "teacher_outputs": self.teacher_outputs,
                "student_outputs": self.student_outputs,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes nested dicts
        teacher = config.pop("teacher")
        if isinstance(teacher, list):
            teacher = [keras.saving.deserialize_keras_object(m) for m in teacher]
        elif teacher is not None:
            teacher = keras.saving.deserialize_keras_object(teacher)
        student = keras.saving.deserialize_keras_object(config.pop("student"))
        return cls(teacher=teacher, student=student, **config)


def _num_classes(model):
    try:
        return model.output_shape[-1]
    except (AttributeError, ValueError, TypeError):
        return None


def _check_same_classes(teacher, student, index=None):
    t, s = _num_classes(teacher), _num_classes(student)
    if t is not None and s is not None and t != s:
        where = "teacher" if index is None else f"teacher[{index}]"
        raise ValueError(
            f"The teacher and the student must output the same number of classes; "
            f"{where} gives {t} and the student {s}. Received: teacher output shape "
            f"{teacher.output_shape}, student output shape {student.output_shape}"
        )


def soft_targets(teacher, data, temperature=4.0, teacher_outputs="logits", batch_size=256):
    """The teacher's softened outputs `q = softmax(t / T)` for every example.

    Step two of distillation as the lecture states it: train a teacher,
    **store its soft targets** for each training example, then train the
    student on them without the teacher in memory:

    ```python
    q = kt.models.soft_targets(teacher, x_train, temperature=4.0)
    np.save("soft_targets.npy", q)                     # teacher can go
    q = np.load("soft_targets.npy")
    distiller = kt.models.Distiller(teacher=None, student=student, temperature=4.0)
    distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(x_train, (y_train, q))
    ```

    The teacher is one of:

    - a `keras.Model` whose outputs are `teacher_outputs`;
    - a `kt.models.Ensemble` or a list of models: the average of the
      members' softened distributions `1/M · Σ_m softmax(t_m / T)`, or with
      an `Ensemble`'s `weights` `Σ_m w_m · softmax(t_m / T) / Σ_m w_m`;
    - a **black box**: any other callable mapping a batch of inputs to
      class probabilities (a remote model that only answers predictions);
      `teacher_outputs="probabilities"` is then required, and
      `q = p^(1/T) / Σ p^(1/T)` uses nothing but the answers.

    Args:
        teacher: see above.
        data: inputs, a NumPy array (or anything indexable along the first
            axis), or a `tf.data.Dataset` of input batches or of
            `(x, y)` batches (its order must be fixed).
        temperature: `T > 0`, the same as the `Distiller`'s. Defaults to
            `4.0`.
        teacher_outputs: `"logits"` or `"probabilities"`. Defaults to
            `"logits"`.
        batch_size: examples per teacher call for array data. Defaults to
            `256`.

    Returns:
        A float32 NumPy array `(num_examples, num_classes)` whose rows sum
        to 1 (write it with `np.save`, read it with `np.load`).

    Raises:
        ValueError: for `temperature <= 0`, an unknown `teacher_outputs`,
            a black box with `teacher_outputs="logits"`, or a callable that
            changes the batch size.
        TypeError: if `teacher` is neither a model, a list of models nor a
            callable.

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531).
    """
    import numpy as np

    temperature = _check_temperature(temperature)
    _check_outputs_kind("teacher_outputs", teacher_outputs)
    batch_size = _checks.check_int("batch_size", batch_size, 1)
    members = _members(teacher)
    weights = [1.0]
    if members is not None:
        models, kind, weights = members[0], members[1] or teacher_outputs, members[2]
        if not models:
            raise ValueError(f"Argument `teacher` is an empty list. Received: teacher={teacher!r}")
        for i, model in enumerate(models):
            if not callable(model):
                raise TypeError(
                    f"Every teacher member must be callable. Received: teacher[{i}]={model!r}"
                )
    elif isinstance(teacher, keras.Model):
        models, kind = [teacher], teacher_outputs
    elif callable(teacher):
        if teacher_outputs != "probabilities":
            raise ValueError(
                "A black-box teacher (a callable that is not a keras.Model) returns "
                "probabilities: pass teacher_outputs='probabilities'. "
                f"Received: teacher_outputs={teacher_outputs!r}"
            )
        models, kind = [teacher], "probabilities"
    else:
        raise TypeError(
            "Argument `teacher` must be a keras.Model, a kt.models.Ensemble, a list of "
            f"models or a callable returning probabilities. Received: teacher={teacher!r}"
        )

    def soften(batch):
        total = None
        for model, weight in zip(models, weights):
            if isinstance(model, keras.Model):
                out = model(batch, training=False)
            else:
                out = model(batch)
            out = np.asarray(ops.convert_to_numpy(out), dtype="float32")
            if out.shape[0] != len(batch):
                raise ValueError(
                    "The teacher changed the batch size: it returned "
                    f"{out.shape[0]} rows for {len(batch)} inputs. Received: teacher={model!r}"
                )
            q = weight * np.exp(ops.convert_to_numpy(_log_softened(out, kind, temperature)))
            total = q if total is None else total + q
        return total

    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset of batches
        parts = []
        for batch in data.as_numpy_iterator():
            if isinstance(batch, tuple):
                batch = batch[0]
            parts.append(soften(batch))
        return np.concatenate(parts).astype("float32")
    n = len(data)
    return np.concatenate(
        [soften(data[i : i + batch_size]) for i in range(0, n, batch_size)]
    ).astype("float32")
