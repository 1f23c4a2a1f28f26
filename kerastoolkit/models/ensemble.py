"""`Ensemble`: a model that averages its members' predicted class distributions."""

import copy
import glob
import os

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastoolkit")
class Ensemble(keras.Model):
    """Averages the class distributions predicted by several models.

    With `M` members `f_1 … f_M`, each giving class probabilities,

    ```
    p(y | x) = 1/M · Σ_i softmax_i(x)
    ```

    where `softmax_i` is member `i`'s output (its softmax is taken first
    when `from_logits=True`). Averaging distributions (not logits) is the
    ensemble of independent models and of snapshot ensembles (Huang et al.
    2017). The ensemble is an ordinary Keras model: it predicts, evaluates,
    saves to `.keras` (the members inside) and exports with `model.export`.

    Args:
        members: list of at least one Keras model, all with the same input
            and output shapes.
        from_logits: bool, whether the members output logits. Defaults to
            `False`.
        weights: list of `M` non-negative floats (summing to > 0) for a
            weighted average, or `None` for equal weights. Defaults to `None`.
        name: model name. Defaults to `None`.

    Raises:
        ValueError: for an empty `members` list, members with different
            output shapes, or a `weights` list of the wrong length or with
            negative values.
        TypeError: if a member is not a Keras model.

    Example:

    ```python
    ensemble = kt.models.Ensemble([model_a, model_b, model_c])
    ensemble.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ensemble.evaluate(x_test, y_test)
    ensemble.save("ensemble.keras")
    ```

    References:
        - [Huang et al., 2017](https://arxiv.org/abs/1704.00109), "Snapshot
          Ensembles: Train 1, get M for free".
    """

    def __init__(self, members, from_logits=False, weights=None, name=None, **kwargs):
        # `**kwargs` only carries Keras's own model arguments (`trainable`,
        # `dtype`) that `keras.Model.from_config` passes back.
        super().__init__(name=name, **kwargs)
        members = list(members) if isinstance(members, (list, tuple)) else members
        if not isinstance(members, list) or not members:
            raise ValueError(
                "Argument `members` must be a non-empty list of models. "
                f"Received: members={members!r}"
            )
        for i, member in enumerate(members):
            if not isinstance(member, keras.Model):
                raise TypeError(
                    "Every member must be a `keras.Model`. "
                    f"Received: members[{i}]={member!r}"
                )
        if not isinstance(from_logits, bool):
            raise TypeError(
                f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}"
            )
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(
                    f"Argument `weights` must hold {len(members)} non-negative "
                    f"floats with a positive sum. Received: weights={weights}"
                )
        shapes = [_output_shape(m) for m in members]
        known = [(i, sh) for i, sh in enumerate(shapes) if sh is not None]
        for i, shape in known[1:]:
            if tuple(shape[1:]) != tuple(known[0][1][1:]):
                raise ValueError(
                    "Every member must have the same output shape; "
                    f"members[{known[0][0]}] gives {known[0][1]} and members[{i}] {shape}. "
                    f"Received: members[{i}]={members[i].name!r}"
                )
        self.members = members
        self.from_logits = from_logits
        self.member_weights = weights

    def call(self, inputs, training=False):
        total = None
        weights = self.member_weights or [1.0] * len(self.members)
        for member, weight in zip(self.members, weights):
            out = member(inputs, training=training)
            if self.from_logits:
                out = ops.softmax(out, axis=-1)
            out = ops.multiply(ops.cast(out, "float32"), weight)
            total = out if total is None else ops.add(total, out)
        return ops.divide(total, float(sum(weights)))

    def build(self, input_shape):
        for member in self.members:
            if not member.built:
                member.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.members[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "members": [keras.saving.serialize_keras_object(m) for m in self.members],
                "from_logits": self.from_logits,
                "weights": self.member_weights,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes nested dicts
        config["members"] = [
            keras.saving.deserialize_keras_object(m) for m in config["members"]
        ]
        return cls(**config)

    @classmethod
    def from_files(cls, paths, pattern="*.keras", from_logits=False, weights=None, name=None):
        """Builds an ensemble from saved `.keras` files.

        Args:
            paths: a directory (its files matching `pattern`, in name order:
                a `kt.callbacks.SnapshotEnsemble` directory gives the
                ensemble of its snapshots) or a list of `.keras` file paths.
            pattern: glob pattern of the member files in a directory.
                Defaults to `"*.keras"`.
            from_logits: as in the constructor. Defaults to `False`.
            weights: as in the constructor. Defaults to `None`.
            name: model name. Defaults to `None`.

        Returns:
            An `Ensemble` of the models loaded with `compile=False`.

        Raises:
            ValueError: if no file matches, a path does not exist, or the
                members' output shapes differ.

        Example:
        >>> ensemble = kt.models.Ensemble.from_files("snapshots/")
        >>> tta = kt.models.TTAPredictor(ensemble, views=["identity", "hflip"])
        """
        if isinstance(paths, (str, os.PathLike)) and os.path.isdir(paths):
            return cls.load(paths, pattern=pattern, from_logits=from_logits, name=name, weights=weights)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError(f"Argument `paths` is an empty list. Received: paths={paths}")
        for p in paths:
            if not os.path.isfile(p):
                raise ValueError(f"No such `.keras` file or directory. Received: paths={p!r}")
        members = [keras.saving.load_model(p, compile=False) for p in paths]
        return cls(members, from_logits=from_logits, weights=weights, name=name)

    @classmethod
    def load(cls, directory, pattern="*.keras", from_logits=False, name=None, weights=None):
        """Builds an ensemble from the `.keras` files in a directory.

        The files are loaded in name order (`snapshot_01.keras`, ...) with
        `compile=False`, so a `kt.callbacks.SnapshotEnsemble` directory gives
        the ensemble of its snapshots.

        Args:
            directory: folder holding the members' `.keras` files.
            pattern: glob pattern of the member files. Defaults to `"*.keras"`.
            from_logits: as in the constructor. Defaults to `False`.
            name: model name. Defaults to `None`.
            weights: as in the constructor. Defaults to `None`.

        Returns:
            An `Ensemble` of the loaded models.

        Raises:
            ValueError: if no file matches.
        """
        paths = sorted(glob.glob(os.path.join(os.fspath(directory), pattern)))
        if not paths:
            raise ValueError(
                f"No member files match {pattern!r} in the directory. "
                f"Received: directory={os.fspath(directory)!r}"
            )
        members = [keras.saving.load_model(p, compile=False) for p in paths]
        return cls(members, from_logits=from_logits, weights=weights, name=name)


def _output_shape(model):
    try:
        return tuple(model.output_shape)
    except (AttributeError, ValueError):
        return None
