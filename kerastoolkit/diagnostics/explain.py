"""Visual explanations of a classifier's decisions: saliency and Grad-CAM maps (tf-keras-vis)."""

import os
import warnings

import keras
import numpy as np


_FEATURES = "kt_gradcam_features"


def _functional_copy(model):
    """A functional clone of `model` with a linear last layer and its feature map marked.

    tf-keras-vis 0.8.7's `ReplaceToLinear` reads `model.output_names`, which a
    Keras 3 `Sequential` model lacks, and it changes the user's model in
    place; its Grad-CAM reads `layer.output`, which for a nested backbone is
    the backbone's own inner tensor, not connected to the outer inputs. So
    the model is cloned (same weights), rebuilt as a functional chain with an
    `Identity` layer named `"kt_gradcam_features"` after the last layer whose
    output is image-like (rank 4; a nested backbone counts as one layer),
    and the clone's softmax is removed so that the maps explain the class
    logit. Models whose top level is not a chain (merge layers) are kept as
    they are, with the last rank-4 layer of their own graph.

    Returns:
        `(functional_clone, feature_layer_name_or_None)`.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    last = clone.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax:
        last.activation = keras.activations.linear
    layers = [l for l in clone.layers if not isinstance(l, keras.layers.InputLayer)]
    if isinstance(layers[-1], keras.layers.Softmax) or (
        isinstance(layers[-1], keras.layers.Activation)
        and layers[-1].activation is keras.activations.softmax
    ):
        layers = layers[:-1]
    try:
        inputs = keras.Input(tuple(model.input_shape[1:]))
        x, ranks = inputs, []
        for layer in layers:
            x = layer(x)
            ranks.append(len(x.shape))
    except (TypeError, ValueError):  # not a chain: keep the model's own graph
        if isinstance(clone, keras.Sequential):
            raise
        name = None
        for layer in clone.layers[1:]:
            if len(layer.output.shape) == 4 and not isinstance(layer, keras.Model):
                name = layer.name
        if len(layers) < len(clone.layers) - 1:  # drop a final Softmax layer
            clone = keras.Model(clone.inputs, layers[-1].output)
        return clone, name
    marked = max((i for i, r in enumerate(ranks) if r == 4), default=None)
    x = inputs
    for i, layer in enumerate(layers):
        x = layer(x)
        if i == marked:
            x = keras.layers.Identity(name=_FEATURES)(x)
    return keras.Model(inputs, x), (_FEATURES if marked is not None else None)


def explain(model, x, path, classes=None, methods=("saliency", "gradcam"), max_images=16):
    """Saliency and Grad-CAM maps for a classifier, saved as a PNG grid.

    For each image `x_i` and class `c_i` (its predicted class unless given),
    with `y_c` the class logit (the model's softmax is removed on a copy):

    ```
    saliency:  S_i = max over channels |∂y_c / ∂x_i|               (Simonyan et al. 2014)
    Grad-CAM:  L_i = ReLU(Σ_k α_k A^k),  α_k = mean_(u,v) ∂y_c / ∂A^k_uv   (Selvaraju et al. 2017)
    ```

    where `A` is the last image-like feature map (a nested backbone's output
    counts as one), upsampled to the input size. Both are scaled to [0, 1]
    per image. Rows of the grid are images; columns are the input, then each
    map over the input. The figure is drawn on its own matplotlib `Figure`
    and canvas: the global backend is never changed.

    Works for `Sequential` models (converted to functional on a copy),
    functional models and models with a nested backbone. The model is not
    modified.

    Args:
        model: a trained Keras image classifier, input `(H, W, C)`.
        x: a batch of images `(N, H, W, C)`.
        path: where the PNG is written (folders are created).
        classes: `N` class indices to explain, or `None` for the predicted
            classes. Defaults to `None`.
        methods: any of `"saliency"` and `"gradcam"`. Defaults to
            `("saliency", "gradcam")`.
        max_images: at most this many images are explained. Defaults to
            `16`.

    Returns:
        A dict: `"classes"` (the explained classes) and one `(n, H, W)` array
        per method; `"path"`, the PNG's path.

    Raises:
        ValueError: for images that are not `(N, H, W, C)`, an unknown method,
            `classes` of the wrong length, or Grad-CAM on a model with no
            image-like feature map.

    Example:
    >>> kt.diagnostics.explain(model, x_test[:8], "runs/1/explain.png")

    References:
        - [Simonyan et al., 2014](https://arxiv.org/abs/1312.6034), "Deep
          Inside Convolutional Networks".
        - [Selvaraju et al., 2017](https://arxiv.org/abs/1610.02391),
          "Grad-CAM".
    """
    from tf_keras_vis.utils.scores import CategoricalScore

    x = np.asarray(x, dtype="float32")
    if x.ndim != 4:
        raise ValueError(f"`x` must be a batch of images (N, H, W, C). Received: x.shape={x.shape}")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in ("saliency", "gradcam")]
    if unknown or not methods:
        raise ValueError(
            f"`methods` must hold 'saliency' and/or 'gradcam'. Received: methods={methods!r}"
        )
    if not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"`max_images` must be a positive integer. Received: max_images={max_images!r}")
    x = x[:max_images]
    if classes is None:
        classes = np.argmax(keras.ops.convert_to_numpy(model(x, training=False)), axis=-1)
    classes = np.asarray(classes, dtype="int64").reshape(-1)[: len(x)]
    if len(classes) != len(x):
        raise ValueError(
            f"`classes` must give one class per image ({len(x)}). Received: classes={classes.tolist()}"
        )
    linear, layer = _functional_copy(model)
    if "gradcam" in methods and layer is None:
        raise ValueError(
            "Grad-CAM needs a layer with an image-like (rank-4) output; the model has none. "
            f"Received: methods={methods!r}"
        )
    score = CategoricalScore(classes.tolist())
    maps = {}
    with warnings.catch_warnings():
        # tf-keras-vis calls the model with a list of one input; Keras 3
        # warns that the structure differs and then accepts it.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        _compute(linear, layer, score, x, methods, maps)
    _draw(x, classes, maps, path)
    return {"classes": classes, "path": os.fspath(path), **maps}


def _compute(linear, layer, score, x, methods, maps):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.saliency import Saliency

    if "saliency" in methods:
        maps["saliency"] = np.asarray(Saliency(linear, clone=False)(score, x))
    if "gradcam" in methods:
        maps["gradcam"] = np.asarray(
            Gradcam(linear, clone=False)(
                score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False
            )
        )


def _draw(x, classes, maps, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = 1 + len(maps)
    fig = Figure(figsize=(1.8 * columns, 1.8 * len(x)))
    FigureCanvasAgg(fig)
    images = x[..., 0] if x.shape[-1] == 1 else np.clip(x, 0, 1)
    for i in range(len(x)):
        ax = fig.add_subplot(len(x), columns, i * columns + 1)
        ax.imshow(images[i], cmap="gray" if images.ndim == 3 else None)
        ax.set_title(f"class {classes[i]}", fontsize=8)
        ax.axis("off")
        for j, (name, values) in enumerate(maps.items()):
            ax = fig.add_subplot(len(x), columns, i * columns + 2 + j)
            ax.imshow(images[i], cmap="gray" if images.ndim == 3 else None)
            ax.imshow(values[i], cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
