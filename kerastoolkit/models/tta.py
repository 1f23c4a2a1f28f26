"""Test-time augmentation: `TTAPredictor` and `dense_evaluation`."""

import copy

import keras
import numpy as np
from keras import ops

from kerastoolkit import _checks

_MEANS = ("arithmetic", "geometric")
_EPSILON = 1e-7


def _parse_view(view, index):
    """A named view: (kind, k) from "identity", "hflip", "vflip", "crops:K", "shift:K"."""
    if callable(view):
        return ("callable", view)
    if not isinstance(view, str):
        raise TypeError(
            "Every view must be a name or a callable mapping a batch to a batch. "
            f"Received: views[{index}]={view!r}"
        )
    name, _, count = view.partition(":")
    if name in ("identity", "hflip", "vflip") and not count:
        return (name, None)
    if name in ("crops", "shift") and count.isdigit() and int(count) > 0:
        k = int(count)
        if name == "crops" and k not in (1, 5, 10):
            raise ValueError(
                f"`crops:K` takes K = 1 (centre), 5 (corners and centre) or 10 (and their "
                f"mirror images). Received: views[{index}]={view!r}"
            )
        return (name, k)
    raise ValueError(
        "Unknown view: use 'identity', 'hflip', 'vflip', 'crops:K', 'shift:K' or a callable. "
        f"Received: views[{index}]={view!r}"
    )


def model_input_shape(model):
    """`model.input_shape`, or its first member's for an ensemble."""
    try:
        return tuple(model.input_shape)
    except (AttributeError, ValueError):
        members = getattr(model, "members", None)
        if members:
            return model_input_shape(members[0])
        raise ValueError(
            "Cannot tell the model's input shape: build it on a keras.Input. "
            f"Received: model={model!r}"
        )


def _shift(x, dy, dx):
    """Translates images by (dy, dx) pixels, filling with zeros."""
    h, w = x.shape[1], x.shape[2]
    padded = ops.pad(x, [[0, 0], [abs(dy), abs(dy)], [abs(dx), abs(dx)], [0, 0]])
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top : top + h, left : left + w, :]


def _expand(kind, arg, x, size):
    """The list of view batches one named view gives for images `x`."""
    if kind == "callable":
        return [arg(x)]
    if kind == "identity":
        return [x]
    if kind == "hflip":
        return [ops.flip(x, axis=2)]
    if kind == "vflip":
        return [ops.flip(x, axis=1)]
    if kind == "shift":
        return [_shift(x, dy, dx) for dy, dx in ((0, arg), (0, -arg), (arg, 0), (-arg, 0))]
    # crops of the model's size: centre, then the four corners, then mirrors
    h, w = x.shape[1], x.shape[2]
    ch, cw = size
    origins = [((h - ch) // 2, (w - cw) // 2)]
    if arg >= 5:
        origins += [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]
    crops = [x[:, i : i + ch, j : j + cw, :] for i, j in origins]
    if arg == 10:
        crops += [ops.flip(c, axis=2) for c in crops]
    return crops


@keras.saving.register_keras_serializable(package="kerastoolkit")
class TTAPredictor(keras.Model):
    """Averages a model's class distributions over deterministic views of the input.

    With views `v_1 … v_K` of an image `x` and the model's class
    distribution `p(· | v)`,

    ```
    arithmetic:  p̄ = 1/K · Σ_k p(· | v_k(x))
    geometric:   p̄ ∝ exp(1/K · Σ_k log p(· | v_k(x)))      (renormalised)
    with beta:   p̄ = β · p(· | x) + (1 − β) · mean over the other views
    ```

    (`beta` as in fastai's `tta(beta=...)`, the identity view weighted by
    `β`; the geometric mean mixes log-probabilities the same way.) Keras's
    augmentation layers do nothing at inference (keras#17385), so the views
    are explicit and deterministic:

    - `"identity"`, `"hflip"`, `"vflip"`;
    - `"shift:K"`: 4 views translated by `K` pixels right, left, down, up
      (zero fill);
    - `"crops:K"`: crops of the wrapped model's input size from a larger
      input: 1 (centre), 5 (centre and corners) or 10 (and their mirror
      images). With crops, `input_shape` is the larger image's shape;
    - any callable mapping a batch `(B, H, W, C)` to a batch of the same
      `B` (a `keras.ops` function; register it with
      `keras.saving.register_keras_serializable` to save the predictor).

    All views of a batch go through the model in **one** forward pass (they
    are concatenated along the batch axis). The predictor is a
    `keras.Model`: it predicts, evaluates, saves to `.keras` (the model
    inside) and exports as a SavedModel with one input and the averaged
    probabilities as output.

    Args:
        model: a trained image classifier, input `(H, W, C)`.
        views: list of views (names or callables). Defaults to
            `("identity", "hflip")`.
        mean: `"arithmetic"` or `"geometric"`. Defaults to `"arithmetic"`.
        beta: weight in [0, 1] of the `"identity"` view, which must be among
            the views, or `None` for equal weights. Defaults to `None`.
        from_logits: whether the model outputs logits (softmax is taken
            first). Defaults to `False`.
        input_shape: shape `(H, W, C)` of the predictor's input. Defaults
            to `None`: the model's input shape.
        name: model name. Defaults to `None`.

    Raises:
        ValueError: for an empty view list, an unknown view, a view that
            changes the batch size or gives images of a size the model does
            not take, an unknown `mean`, or a `beta` outside [0, 1] or
            without an identity view.
        TypeError: for a `model` that is not a Keras model or a view that is
            neither a name nor a callable.

    Example:

    ```python
    tta = kt.models.TTAPredictor(model, views=["identity", "hflip", "shift:2"])
    probabilities = tta.predict(x_test)
    kt.export.saved_model(tta, "savedmodels/fashion_tta")
    ```

    References:
        - [Krizhevsky et al., 2012](https://papers.nips.cc/paper/4824),
          ten-crop testing.
        - [Simonyan & Zisserman, 2015](https://arxiv.org/abs/1409.1556),
          multi-crop and dense evaluation.
    """

    def __init__(
        self,
        model,
        views=("identity", "hflip"),
        mean="arithmetic",
        beta=None,
        from_logits=False,
        input_shape=None,
        name=None,
        **kwargs,
    ):
        # `**kwargs` only carries Keras's own model arguments (`trainable`,
        # `dtype`) that `keras.Model.from_config` passes back.
        super().__init__(name=name, **kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"Argument `model` must be a keras.Model. Received: model={model!r}")
        if isinstance(views, (str,)) or not hasattr(views, "__iter__"):
            raise TypeError(f"Argument `views` must be a list of views. Received: views={views!r}")
        views = list(views)
        if not views:
            raise ValueError(f"Argument `views` must hold at least one view. Received: views={views}")
        parsed = [_parse_view(v, i) for i, v in enumerate(views)]
        if mean not in _MEANS:
            raise ValueError(f"Argument `mean` must be one of {_MEANS}. Received: mean={mean!r}")
        beta = _checks.check_real("beta", beta, low=0.0, high=1.0, allow_none=True)
        if beta is not None and "identity" not in views:
            raise ValueError(
                "Argument `beta` weights the 'identity' view, which is not among the views. "
                f"Received: beta={beta}, views={views}"
            )
        if not isinstance(from_logits, bool):
            raise TypeError(f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}")
        model_shape = tuple(model_input_shape(model)[1:])
        if len(model_shape) != 3 or None in model_shape[:2]:
            raise ValueError(
                "The model must take images of a fixed size (H, W, C). "
                f"Received: model.input_shape={model_input_shape(model)}"
            )
        input_shape = model_shape if input_shape is None else tuple(int(d) for d in input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"Argument `input_shape` must be (H, W, C). Received: input_shape={input_shape}")
        self.model = model
        self.views = views
        self.mean = mean
        self.beta = beta
        self.from_logits = from_logits
        self.tta_input_shape = input_shape
        self._parsed = parsed
        self._model_size = model_shape[:2]
        self._weights = self._check_views(model_shape)
        # A symbolic call builds the predictor and records its input
        # signature, so that `model.export` works before any prediction.
        self(keras.KerasTensor((None,) + self.tta_input_shape, dtype="float32"))

    def _check_views(self, model_shape):
        """Runs every view on a probe batch; returns the per-view weights."""
        probe = np.zeros((2,) + self.tta_input_shape, "float32")
        counts = []
        for i, (kind, arg) in enumerate(self._parsed):
            if kind == "crops" and any(a < b for a, b in zip(self.tta_input_shape[:2], self._model_size)):
                raise ValueError(
                    f"Crops of the model's size {self._model_size} do not fit in the input "
                    f"{self.tta_input_shape[:2]}. Received: input_shape={self.tta_input_shape}"
                )
            outs = _expand(kind, arg, probe, self._model_size)
            for out in outs:
                shape = tuple(ops.shape(out))
                if shape[0] != 2:
                    raise ValueError(
                        f"A view must keep the batch size: it turned a batch of 2 into {shape[0]}. "
                        f"Received: views[{i}]={self.views[i]!r}"
                    )
                if tuple(shape[1:]) != tuple(model_shape):
                    raise ValueError(
                        f"A view gives images of shape {tuple(shape[1:])} but the model takes "
                        f"{tuple(model_shape)} (use crops, or pass the larger `input_shape`). "
                        f"Received: views[{i}]={self.views[i]!r}"
                    )
            counts.append(len(outs))
        total = sum(counts)
        if self.beta is None:
            return [1.0 / total] * total
        weights = []
        others = total - 1 if total > 1 else 1
        seen_identity = False
        for (kind, _), n in zip(self._parsed, counts):
            if kind == "identity" and not seen_identity:
                weights.append(self.beta if total > 1 else 1.0)
                seen_identity = True
            else:
                weights += [(1.0 - self.beta) / others] * n
        return weights

    @classmethod
    def for_recipe(cls, model, recipe, image_shape=None, **kwargs):
        """A predictor on the views `recipe` trains with (`recipe.tta_views`); see `views_for_augmentation`.

        Args:
            model: the classifier the recipe trained.
            recipe: a `kt.presets.Recipe`.
            image_shape: `(H, W, C)`. Defaults to `None`: the model's input shape.
            **kwargs: the other `TTAPredictor` arguments (`mean`, `beta`, ...).
        """
        shape = tuple(model_input_shape(model)[1:]) if image_shape is None else tuple(image_shape)
        return cls(model, views=recipe.tta_views(shape), **kwargs)

    @property
    def num_views(self):
        """The number of views each example is predicted on."""
        return len(self._weights)

    def call(self, inputs, training=False):
        batches = []
        for kind, arg in self._parsed:
            batches += _expand(kind, arg, inputs, self._model_size)
        k = len(batches)
        out = self.model(ops.concatenate(batches, axis=0), training=False)
        out = ops.cast(out, "float32")
        if self.from_logits:
            out = ops.softmax(out, axis=-1)
        out = ops.reshape(out, (k, -1, out.shape[-1]))
        weights = ops.reshape(ops.convert_to_tensor(self._weights, "float32"), (k, 1, 1))
        if self.mean == "arithmetic":
            return ops.sum(weights * out, axis=0)
        logp = ops.sum(weights * ops.log(ops.clip(out, _EPSILON, 1.0)), axis=0)
        return ops.softmax(logp, axis=-1)  # renormalised geometric mean

    def build(self, input_shape):
        if not self.model.built:
            self.model.build((None,) + tuple(model_input_shape(self.model)[1:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self.model.compute_output_shape((None,) + tuple(model_input_shape(self.model)[1:]))
        return (input_shape[0], shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "views": [
                    v if isinstance(v, str) else keras.saving.serialize_keras_object(v)
                    for v in self.views
                ],
                "mean": self.mean,
                "beta": self.beta,
                "from_logits": self.from_logits,
                "input_shape": list(self.tta_input_shape),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes nested dicts
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["views"] = [
            v if isinstance(v, str) else keras.saving.deserialize_keras_object(v)
            for v in config["views"]
        ]
        return cls(**config)


def _augmentation_layers(augmentation):
    """The layers of an augmentation (a layer, a `keras.Sequential`, a `TrainingOnly` wrapper), flattened."""
    if isinstance(augmentation, keras.Sequential):
        for layer in augmentation.layers:
            yield from _augmentation_layers(layer)
    elif type(augmentation).__name__ == "TrainingOnly":  # kt.layers.TrainingOnly(layer)
        yield from _augmentation_layers(augmentation.layer)
    else:
        yield augmentation


def _translation_range(factor, size):
    """The pixel range `(low, high)` of a `RandomTranslation` factor along an axis of `size` pixels."""
    low, high = (-factor, factor) if isinstance(factor, (int, float)) else tuple(factor)
    return low * size, high * size


def views_for_augmentation(augmentation, image_shape):
    """The named TTA views an augmentation policy itself draws at training time.

    Test-time views help a model that was shown such views in training, and
    hurt one that was not (a flip of a digit is another symbol). The views
    returned are the deterministic ones `TTAPredictor` knows that lie inside
    the policy's random draws:

    - `"identity"`, always;
    - `"hflip"` / `"vflip"` for a `RandomFlip` in that direction;
    - `"shift:1"` (four 1-pixel translations) for a `RandomTranslation`
      whose range covers one pixel in every direction, with the zero fill
      of `TTAPredictor`'s shifts.

    Rotations, zooms, shears and photometric layers give no view here (their
    small settings are close to the identity).

    Args:
        augmentation: an augmentation layer, a `keras.Sequential` of them
            (`kt.data.augmentation`), or a `kt.layers.TrainingOnly` around
            one; `None` for no augmentation.
        image_shape: `(H, W, C)` of the images, for the translations' pixels.

    Returns:
        A list of view names for `TTAPredictor(model, views=...)`.

    Example:
    >>> augment = kt.data.augmentation("geometric", rotation=0, shear=0, zoom=0, translation=0.1)
    >>> kt.models.tta.views_for_augmentation(augment, (28, 28, 1))
    ['identity', 'hflip', 'shift:1']
    """
    height, width = (int(d) for d in tuple(image_shape)[:2])
    views = ["identity"]
    if augmentation is None:
        return views
    for layer in _augmentation_layers(augmentation):
        if isinstance(layer, keras.layers.RandomFlip):
            for mode, view in (("horizontal", "hflip"), ("vertical", "vflip")):
                if mode in layer.get_config()["mode"] and view not in views:
                    views.append(view)
        elif isinstance(layer, keras.layers.RandomTranslation):
            config = layer.get_config()
            ranges = (_translation_range(config["height_factor"], height),
                      _translation_range(config["width_factor"], width))
            if all(low <= -1 and high >= 1 for low, high in ranges) and config["fill_mode"] == "constant":
                views.append("shift:1")
    return views


def dense_evaluation(model, images, from_logits=False):
    """Runs a fully convolutional classifier densely over larger images.

    The "more elegant" alternative to multi-crop testing (Simonyan &
    Zisserman 2015, §3.2): a fully convolutional network, applied to an image
    larger than its training crops, gives a map of class distributions, one
    per location, each the prediction on the crop under its receptive field.
    Their spatial average is the class distribution of the image:

    ```
    p̄(· | x) = 1/(h'·w') · Σ_(i,j) p(· | x)_(i,j)
    ```

    Args:
        model: a Keras model whose input has free height and width (e.g.
            `keras.Input((None, None, C))`) and whose output is
            `(B, h', w', classes)`, or `(B, classes)` when the model pools
            itself.
        images: a batch `(B, H, W, C)` (one image `(H, W, C)` is batched).
        from_logits: whether the map holds logits (softmax per location
            first). Defaults to `False`.

    Returns:
        A NumPy array `(B, classes)` (or `(classes,)` for one image).

    Raises:
        ValueError: if the images are not of rank 3 or 4 or the model's
            output is neither a map nor a vector per image.

    Example:
    >>> probabilities = kt.models.dense_evaluation(fcn, x_large)
    """
    images = ops.convert_to_numpy(images)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(
            f"`images` must be (B, H, W, C) or (H, W, C). Received: images.shape={images.shape}"
        )
    out = ops.cast(model(images, training=False), "float32")
    if from_logits:
        out = ops.softmax(out, axis=-1)
    if len(out.shape) == 4:
        out = ops.mean(out, axis=(1, 2))
    elif len(out.shape) != 2:
        raise ValueError(
            "The model must output a class map (B, h, w, classes) or (B, classes). "
            f"Received: output shape {tuple(out.shape)}"
        )
    out = ops.convert_to_numpy(out)
    return out[0] if single else out
