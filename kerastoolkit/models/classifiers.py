"""Small, well-configured classifiers for the toolkit's offline datasets."""

import keras
import numpy as np

from kerastoolkit.layers.augmentation import TrainingOnly
from kerastoolkit.layers.standardize import Standardize


def default_classifier(
    input_shape,
    num_classes,
    normalization_data=None,
    name=None,
    *,
    augmentation=None,
    input_dtype=None,
    dropout=None,
):
    """A small classifier suited to the input's rank.

    The first layer standardizes with statistics computed from the training
    inputs, saved with the model and applied at test time, inside the model,
    so an exported SavedModel takes the same raw inputs:

    - images: `kt.layers.Standardize("per_channel")` (the per-channel mean
      and standard deviation, streamed over the data, float64). It casts its
      input, so with integer training data (e.g. Fashion-MNIST's raw `uint8`
      pixels, `kt.data.load(..., raw=True)`) the model's input is `uint8`
      and the SavedModel serves raw `uint8` images;
    - vectors and signals: `keras.layers.Normalization(axis=-1)`, per
      feature or channel (the same arithmetic; nothing to gain there).

    - vectors `(d,)`: a two-hidden-layer MLP with dropout;
    - sequences `(length, channels)` or `(length,)`: a 1D CNN;
    - images `(h, w, c)`: two 3×3 convolution blocks with batch
      normalization (2×2 max pooling after each unless the image is at most
      8 pixels wide), a 128-unit dense layer and dropout.

    The last layer is a softmax over `num_classes`.

    Args:
        input_shape: shape of one example, without the batch dimension.
        num_classes: number of classes, at least 2.
        normalization_data: training inputs (array or batched `tf.data.Dataset`
            of inputs) to adapt the normalization to. `None` leaves the
            normalization layer out. Defaults to `None`.
        name: model name. Defaults to `None`.
        augmentation: a layer (e.g. `kt.data.augmentation_for(dataset,
            policy, raw=...)`) applied to the images right after the input,
            wrapped in `kt.layers.TrainingOnly`: random in `fit`, the identity
            in `predict`, `model(x)` and the exported SavedModel. Its value
            range must be the inputs'. Defaults to `None`.
        input_dtype: the model's input dtype. Defaults to `None`: the dtype of
            an integer `normalization_data` array or dataset (raw pixels
            stay raw), float32 otherwise.
        dropout: the dropout rate of the dropout layers, in `[0, 1)` (a
            recipe's `dropout`). Defaults to `None`: 0.2 for vectors and
            signals, 0.3 for images.

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: for a non-positive dimension or fewer than 2 classes.

    Example:
    >>> model = default_classifier((8, 8, 1), 10)
    >>> model.output_shape
    (None, 10)
    """
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape or any(d <= 0 for d in input_shape):
        raise ValueError(
            "`input_shape` must be non-empty with positive dimensions. "
            f"Received: input_shape={input_shape}"
        )
    if int(num_classes) < 2:
        raise ValueError(
            f"`num_classes` must be at least 2. Received: num_classes={num_classes}"
        )
    if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1):
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    images = len(input_shape) == 3
    if input_dtype is None:
        input_dtype = _integer_dtype(normalization_data) if images else None
    inputs = keras.Input(input_shape, dtype=input_dtype or "float32")
    x = inputs
    if augmentation is not None:
        if not images:
            raise ValueError(
                "`augmentation` is for image inputs (height, width, channels). "
                f"Received: input_shape={input_shape}"
            )
        # Keras's augmentation layers also augment in `model(x)` and in the
        # exported serving function (no `training` there): fit only.
        x = TrainingOnly(augmentation, name="augmentation")(x)
    if len(input_shape) == 1 and input_shape[0] >= 32:
        x = keras.layers.Reshape(input_shape + (1,))(x)  # a signal, e.g. mnist1d
    if normalization_data is not None:
        if images:
            norm = Standardize("per_channel", name="standardize")
        else:
            norm = keras.layers.Normalization(axis=-1)
        norm.adapt(_as_rank(normalization_data, x.shape))
        x = norm(x)
    elif images and x.dtype != "float32":
        x = keras.layers.Rescaling(1.0, dtype="float32")(x)  # a float cast
    rank = len(x.shape) - 1
    if rank == 1:
        for units in (256, 128):
            x = keras.layers.Dense(units, activation="relu")(x)
            x = keras.layers.Dropout(0.2 if dropout is None else dropout)(x)
    elif rank == 2:
        for filters in (32, 64):
            x = keras.layers.Conv1D(filters, 5, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
            x = keras.layers.MaxPooling1D(2)(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(0.2 if dropout is None else dropout)(x)
    elif rank == 3:
        small = min(input_shape[:2]) <= 8
        for filters in (32, 64):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
            if not small:
                x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(0.3 if dropout is None else dropout)(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(0.3 if dropout is None else dropout)(x)
    else:
        raise ValueError(
            "`input_shape` must have rank 1, 2 or 3. "
            f"Received: input_shape={input_shape}"
        )
    outputs = keras.layers.Dense(int(num_classes), activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def _integer_dtype(data):
    """The dtype name of integer data (array or dataset), else `None`."""
    dtype = getattr(data, "dtype", None)
    spec = getattr(data, "element_spec", None)
    if spec is not None:
        spec = spec[0] if isinstance(spec, tuple) else spec
        dtype = spec.dtype.name
    if dtype is None:
        return None
    dtype = np.dtype(getattr(dtype, "name", dtype) if not isinstance(dtype, str) else dtype)
    return dtype.name if np.issubdtype(dtype, np.integer) else None


def _as_rank(data, symbolic_shape):
    """Reshapes array inputs to the (batch,) + shape the normalization sees."""
    if hasattr(data, "shape") and len(data.shape) == len(symbolic_shape) - 1:
        return keras.ops.convert_to_numpy(data).reshape((-1,) + tuple(symbolic_shape[1:]))
    return data
