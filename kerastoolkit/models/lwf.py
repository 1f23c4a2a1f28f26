"""Learning without forgetting (Li & Hoiem 2017)."""

import copy

import keras
from keras import ops

from kerastoolkit import _checks
from kerastoolkit.models.distiller import (
    _check_outputs_kind,
    _check_temperature,
    _log_softened,
    soft_targets,
)


class _OldTaskLoss(keras.losses.Loss):
    """Li & Hoiem's old-task term `H(y'_o, ŷ'_o) = −Σ_c y'_c · log ŷ'_c` per example.

    `y_true` is the recorded softened distribution `y'_o`, `y_pred` the old
    head's output, softened at `T` here (`ŷ'_o`); times `T²` when
    `scale_by_temperature_squared`. Rebuilt from the model's arguments, so
    not registered on its own.
    """

    def __init__(self, temperature, from_logits, scale_by_temperature_squared):
        super().__init__(name="old_task_loss", reduction="sum_over_batch_size")
        self.temperature = temperature
        self.from_logits = from_logits
        self.scale = temperature**2 if scale_by_temperature_squared else 1.0

    def call(self, y_true, y_pred):
        q = ops.stop_gradient(ops.clip(ops.cast(y_true, "float32"), 0.0, 1.0))
        kind = "logits" if self.from_logits else "probabilities"
        log_p = _log_softened(y_pred, kind, self.temperature)
        cross_entropy = -ops.sum(q * log_p, axis=-1)
        return ops.multiply(cross_entropy, self.scale)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class LearningWithoutForgetting(keras.Model):
    """Adds a new task's head to a trained network without forgetting the old task.

    Li & Hoiem's recipe: the network's shared layers `θs` and old head `θo`
    are kept, a new head `θn` is added on the shared features; before
    training, the old head's outputs on the **new** data are recorded
    (`record(x_new)`: `Y_o = softmax(t_o / T)`); then all of it trains on

    ```
    L = CE(y_n, ŷ_n) + λ_o · H(y'_o, ŷ'_o),   H(y', ŷ') = −Σ_c y'_c · log ŷ'_c
    ```

    the paper's loss (its equation 2 and Algorithm 1): `y'_o` are the
    recorded outputs softened at `T`, `ŷ'_o = softmax(ŷ_o / T)` the old
    head's current outputs softened the same way (`T = 2` in the paper), and
    no `T²` factor. `scale_by_temperature_squared=True` multiplies the
    old-task term by `T²`, as Hinton et al.'s distillation loss
    (`kt.models.DistillationLoss`) does to keep its gradient's size
    independent of `T`; at `T = 2` that weighs the old task 4 times what
    `λ_o` says. `old_task_weight=0` is plain fine-tuning of the shared
    layers on the new task, the baseline that forgets.

    The model outputs `[old_task, new_task]` probabilities; fit on
    `(x_new, (y_new, recorded))`. `old_task_model` and `new_task_model`
    give single-output models to evaluate or export.

    Args:
        model: the trained old-task network (functional or Sequential),
            ending in its old head.
        num_classes: classes of the new task, at least 2.
        temperature: `T > 0` of the old-task term. Defaults to `2.0`.
        old_task_weight: `λ_o ≥ 0`. Defaults to `1.0`.
        feature_layer: name of the layer whose output feeds the new head.
            Defaults to `None`: the input of the old head (last layer).
        old_outputs: `"probabilities"` or `"logits"`, what the old head
            outputs. Defaults to `"probabilities"`.
        scale_by_temperature_squared: multiply the old-task term by `T²`
            (Hinton et al.'s scaling, not the paper's). Defaults to `False`.
        name: model name. Defaults to `"learning_without_forgetting"`.

    Raises:
        ValueError: for an unknown `feature_layer`, `temperature <= 0`, a
            negative `old_task_weight` or fewer than 2 classes.
        TypeError: if `scale_by_temperature_squared` is not a bool.

    Example:

    ```python
    lwf = kt.models.LearningWithoutForgetting(old_model, num_classes=5)
    recorded = lwf.record(x_new)          # before any training
    lwf.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    lwf.fit(x_new, (y_new, recorded), epochs=10)
    lwf.old_task_model.evaluate(x_old_test, y_old_test)
    ```

    References:
        - [Li & Hoiem, 2017](https://arxiv.org/abs/1606.09282), "Learning
          without Forgetting".
    """

    def __init__(
        self,
        model,
        num_classes,
        temperature=2.0,
        old_task_weight=1.0,
        feature_layer=None,
        old_outputs="probabilities",
        scale_by_temperature_squared=False,
        name="learning_without_forgetting",
        **kwargs,
    ):
        # `**kwargs` only carries Keras's own model arguments (`trainable`,
        # `dtype`) that `keras.Model.from_config` passes back.
        super().__init__(name=name, **kwargs)
        from kerastoolkit.models.transfer import _get_layer

        if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
            raise TypeError(
                f"Argument `model` must be a functional or Sequential keras.Model. Received: model={model!r}"
            )
        self.num_classes = _checks.check_int("num_classes", num_classes, 2)
        self.temperature = _check_temperature(temperature)
        self.old_task_weight = _checks.check_real("old_task_weight", old_task_weight, low=0.0)
        self.old_outputs = _check_outputs_kind("old_outputs", old_outputs)
        if not isinstance(scale_by_temperature_squared, bool):
            raise TypeError(
                "Argument `scale_by_temperature_squared` must be a bool. "
                f"Received: scale_by_temperature_squared={scale_by_temperature_squared!r}"
            )
        self.scale_by_temperature_squared = scale_by_temperature_squared
        if feature_layer is None:
            features = model.layers[-1].input
        else:
            features = _get_layer(model, feature_layer, argument="feature_layer").output
        self.feature_layer = feature_layer
        self.old_model = model
        self.new_head = keras.layers.Dense(self.num_classes, activation="softmax", name="new_task")
        self.network = keras.Model(model.inputs, [model.output, self.new_head(features)])
        self._old_loss = _OldTaskLoss(
            self.temperature, self.old_outputs == "logits", scale_by_temperature_squared
        )

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return [tuple(t.shape) for t in self.network.outputs]

    @property
    def old_task_model(self):
        """The old task's network (shared layers and old head)."""
        return keras.Model(self.network.inputs, self.network.outputs[0])

    @property
    def new_task_model(self):
        """The new task's network (shared layers and new head)."""
        return keras.Model(self.network.inputs, self.network.outputs[1])

    def record(self, x, batch_size=256):
        """The old head's softened outputs `softmax(t_o / T)` on the new data (before training)."""
        return soft_targets(
            self.old_model, x, self.temperature, teacher_outputs=self.old_outputs, batch_size=batch_size
        )

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None, **kwargs):
        """Configures training; `loss` and `metrics` are the new task's."""
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Recompiles a reloaded model from `get_compile_config()`."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _split(self, y):
        if isinstance(y, (list, tuple)) and len(y) == 2:
            return y[0], y[1]
        return y, None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, recorded = self._split(y)
        if y_pred is None:
            y_pred = self(x, training=training)
        old, new = y_pred
        loss = super().compute_loss(x, labels, new, sample_weight, training=training)
        if recorded is None:
            if training and self.old_task_weight > 0:
                raise ValueError(
                    "Learning without forgetting trains on the old head's recorded outputs: "
                    "fit on (x_new, (y_new, lwf.record(x_new))). Received: y without them"
                )
            return loss
        old_term = self._old_loss(recorded, old, sample_weight=sample_weight)
        return loss + ops.multiply(self.old_task_weight, old_term)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = self._split(y)
        return super().compute_metrics(x, labels, y_pred[1], sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.old_model),
                "num_classes": self.num_classes,
                "temperature": self.temperature,
                "old_task_weight": self.old_task_weight,
                "feature_layer": self.feature_layer,
                "old_outputs": self.old_outputs,
                "scale_by_temperature_squared": self.scale_by_temperature_squared,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes nested dicts
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def learning_without_forgetting(model, num_classes, x_new, **kwargs):
    """Builds a `LearningWithoutForgetting` model and records the old outputs.

    Args:
        model: the trained old-task network.
        num_classes: classes of the new task.
        x_new: the new task's training inputs.
        **kwargs: the other `LearningWithoutForgetting` arguments.

    Returns:
        `(lwf, recorded)`: the model (uncompiled) and the old head's
        softened outputs on `x_new`, to fit on `(x_new, (y_new, recorded))`.
    """
    lwf = LearningWithoutForgetting(model, num_classes, **kwargs)
    return lwf, lwf.record(x_new)
