"""Image augmentation layers Keras core lacks: noise, JPEG artefacts, lens distortion, multiple crops.

Like Keras's own augmentation layers (`keras.layers.RandomFlip`...), each one
is random when called with `training=True` (the default of a direct call,
e.g. in a `tf.data` pipeline) and the identity at inference
(`training=False`, which `model.predict`, `model.evaluate` and an exported
SavedModel use), except `MultiCrop`, whose inference crops are fixed. Each
takes a `seed`. Images are `(batch, height, width, channels)` or one image
`(height, width, channels)`, channels last, with values in `value_range`.

Which library does the work: `RandomGaussianNoise`, `SaltAndPepperNoise`,
`RandomLensDistortion` and `MultiCrop` are written with `keras.ops` and
`keras.random` (any backend; in a `tf.data` pipeline on the TensorFlow
backend). `RandomJpegQuality` calls TensorFlow's JPEG codec
(`tf.image.adjust_jpeg_quality`): TensorFlow only, and not XLA-compilable.
keras-cv 0.9.0's `RandomJpegQuality` was tried first on Keras 3.15 and
rejected: it also compresses at inference (`training=False` is ignored) and
its `get_config` holds a non-JSON factor-sampler object, so a `.keras` file
cannot hold it.
"""

import keras

from kerastoolkit import _checks


def _check_value_range(value_range):
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(_checks.is_real(v) for v in value_range)
        or not value_range[0] < value_range[1]
    ):
        raise ValueError(
            "Argument `value_range` must be two numbers (low, high) with low < high. "
            f"Received: value_range={value_range!r}"
        )
    return (float(value_range[0]), float(value_range[1]))


def _check_seed(seed):
    if seed is not None and not _checks.is_int(seed):
        raise TypeError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
    return seed


class _Augmentation(keras.layers.Layer):
    """Shared plumbing: seed, value range, rank-3 inputs, identity at inference."""

    def __init__(self, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.value_range = _check_value_range(value_range)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def call(self, inputs, training=True):
        images = keras.ops.cast(inputs, self.compute_dtype)
        if not training:
            return images
        single = len(images.shape) == 3
        if single:
            images = keras.ops.expand_dims(images, 0)
        if len(images.shape) != 4:
            raise ValueError(
                f"{type(self).__name__} takes images (batch, height, width, channels) or "
                f"(height, width, channels). Received: inputs.shape={tuple(inputs.shape)}"
            )
        outputs = self._augment(images)
        return keras.ops.squeeze(outputs, 0) if single else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, training=True):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class RandomGaussianNoise(_Augmentation):
    """Adds Gaussian noise scaled to the image's value range, then clips to it.

    `y = clip(x + σ·(high − low)·n, low, high)`, `n ~ N(0, 1)` per value.

    `keras.layers.GaussianNoise` adds `N(0, stddev²)` in absolute units, does
    not clip, and (Keras 3.15) rejects `stddev > 1`, so it cannot add
    visible noise to raw `[0, 255]` images: this layer's `stddev` is a
    fraction of the value range (the same setting for `[0, 1]` and
    `[0, 255]` images) and the result stays a valid image. Written with
    `keras.ops`.

    Args:
        stddev: noise standard deviation as a fraction of `high − low`, >= 0.
            Defaults to `0.05`.
        value_range: `(low, high)` of the images. Defaults to `(0, 255)`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for a negative `stddev` or a bad `value_range`.

    Example:
    >>> noisy = kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=0)(images)
    """

    def __init__(self, stddev=0.05, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.stddev = _checks.check_real("stddev", stddev, 0.0)

    def _augment(self, images):
        low, high = self.value_range
        noise = keras.random.normal(keras.ops.shape(images), seed=self.seed_generator, dtype=self.compute_dtype)
        return keras.ops.clip(images + noise * (self.stddev * (high - low)), low, high)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


@keras.saving.register_keras_serializable(package="kerastoolkit")
class SaltAndPepperNoise(_Augmentation):
    """Sets random pixels to the lowest (pepper) or highest (salt) value.

    Each pixel (all its channels together) becomes `low` with probability
    `rate/2`, `high` with probability `rate/2`, and is kept otherwise.
    Written with `keras.ops`.

    Args:
        rate: fraction of pixels replaced, in [0, 1]. Defaults to `0.05`.
        value_range: `(low, high)` of the images. Defaults to `(0, 255)`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for `rate` outside [0, 1] or a bad `value_range`.

    Example:
    >>> noisy = kt.layers.SaltAndPepperNoise(0.02, value_range=(0, 1), seed=0)(images)
    """

    def __init__(self, rate=0.05, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.rate = _checks.check_real("rate", rate, 0.0, 1.0)

    def _augment(self, images):
        low, high = self.value_range
        shape = keras.ops.shape(images)
        u = keras.random.uniform((shape[0], shape[1], shape[2], 1), seed=self.seed_generator)
        dtype = self.compute_dtype
        images = keras.ops.where(u < self.rate / 2, keras.ops.cast(low, dtype), images)
        return keras.ops.where((u >= self.rate / 2) & (u < self.rate), keras.ops.cast(high, dtype), images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def _check_factor(factor, name="factor", bound=1.0):
    if _checks.is_real(factor):
        factor = _checks.check_real(name, factor, 0.0, bound, high_open=True)
        return (-factor, factor)
    if (
        isinstance(factor, (tuple, list))
        and len(factor) == 2
        and all(_checks.is_real(f) and -bound < f < bound for f in factor)
        and factor[0] <= factor[1]
    ):
        return (float(factor[0]), float(factor[1]))
    raise ValueError(
        f"Argument `{name}` must be a number in [0, {bound}) or a pair (low, high) "
        f"with -{bound} < low <= high < {bound}. Received: {name}={factor!r}"
    )


_FILL_MODES = ("constant", "nearest")


@keras.saving.register_keras_serializable(package="kerastoolkit")
class RandomLensDistortion(_Augmentation):
    """Radial lens distortion: barrel (`k > 0`) or pincushion (`k < 0`).

    The output pixel at normalised position `p` (coordinates in [-1, 1]
    from the image centre) samples the input at `p·(1 + k·|p|²)`, with one
    `k` per image drawn uniformly from `factor`. With `k > 0` the edges are
    squeezed towards the centre (barrel, as a wide-angle lens); with `k < 0`
    they are stretched out (pincushion, as a telephoto lens). Bilinear
    interpolation by a gather in `keras.ops`; outside the image `fill_mode`
    applies.

    Args:
        factor: `k`'s range: a number `f` in [0, 1) for `[-f, f]` (both
            kinds), or a pair `(low, high)`. Defaults to `0.2`.
        value_range: `(low, high)` of the images (used for nothing but the
            fill value's default). Defaults to `(0, 255)`.
        fill_mode: `"constant"` (`fill_value` outside the image) or
            `"nearest"` (the closest edge pixel). Defaults to `"constant"`.
        fill_value: value outside the image in `"constant"` mode. Defaults to
            `None`: the low end of `value_range`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for a bad `factor`, `fill_mode` or `interpolation`.

    Example:
    >>> barrel = kt.layers.RandomLensDistortion((0.1, 0.3), value_range=(0, 1), seed=0)

    References:
        Brown, Decentering distortion of lenses, 1966 (the radial model).
    """

    def __init__(
        self,
        factor=0.2,
        value_range=(0, 255),
        fill_mode="constant",
        fill_value=None,
        interpolation="bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.factor = _check_factor(factor)
        if fill_mode not in _FILL_MODES:
            raise ValueError(
                f"Argument `fill_mode` must be one of {_FILL_MODES}. Received: fill_mode={fill_mode!r}"
            )
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                "Argument `interpolation` must be 'bilinear' or 'nearest'. "
                f"Received: interpolation={interpolation!r}"
            )
        self.fill_mode = fill_mode
        self.fill_value = None if fill_value is None else _checks.check_real("fill_value", fill_value)
        self.interpolation = interpolation

    def _augment(self, images):
        shape = keras.ops.shape(images)
        batch = shape[0]
        height, width, channels = images.shape[1], images.shape[2], images.shape[3]
        k = keras.random.uniform(
            (batch, 1, 1), self.factor[0], self.factor[1], seed=self.seed_generator
        )
        yy = keras.ops.linspace(-1.0, 1.0, height)[:, None]
        xx = keras.ops.linspace(-1.0, 1.0, width)[None, :]
        stretch = 1.0 + k * (yy**2 + xx**2)[None]  # (batch, h, w)
        src_y = (yy[None] * stretch + 1.0) * ((height - 1) / 2.0)
        src_x = (xx[None] * stretch + 1.0) * ((width - 1) / 2.0)
        return _sample(images, src_y, src_x, self.interpolation, self.fill_mode, self._fill())

    def _fill(self):
        return self.value_range[0] if self.fill_value is None else self.fill_value

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "factor": list(self.factor),
                "fill_mode": self.fill_mode,
                "fill_value": self.fill_value,
                "interpolation": self.interpolation,
            }
        )
        return config


def _sample(images, src_y, src_x, interpolation, fill_mode, fill_value):
    """`images[b, src_y, src_x, :]`, bilinear or nearest; `src_*` are `(batch, ..., h, w)`.

    A gather on the flattened batch (`keras.ops.take`), so that the batch size
    may be unknown (a `tf.data` pipeline); outside the image `fill_mode`
    `"constant"` gives `fill_value`, `"nearest"` the closest edge pixel.
    """
    shape = keras.ops.shape(images)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    flat = keras.ops.reshape(images, (-1, channels))
    src_y = keras.ops.cast(src_y, "float32")
    src_x = keras.ops.cast(src_x, "float32")
    if fill_mode == "nearest":
        src_y = keras.ops.clip(src_y, 0.0, height - 1.0)
        src_x = keras.ops.clip(src_x, 0.0, width - 1.0)
    b = keras.ops.arange(shape[0], dtype="int32")
    b = keras.ops.reshape(b, (-1,) + (1,) * (len(src_y.shape) - 1))

    def corner(yi, xi):
        valid = (yi >= 0) & (yi <= height - 1) & (xi >= 0) & (xi <= width - 1)
        yc = keras.ops.cast(keras.ops.clip(yi, 0, height - 1), "int32")
        xc = keras.ops.cast(keras.ops.clip(xi, 0, width - 1), "int32")
        values = keras.ops.take(flat, (b * height + yc) * width + xc, axis=0)
        fill = keras.ops.cast(fill_value, values.dtype)
        return keras.ops.where(valid[..., None], values, fill)

    if interpolation == "nearest":
        return corner(keras.ops.round(src_y), keras.ops.round(src_x))
    y0, x0 = keras.ops.floor(src_y), keras.ops.floor(src_x)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    wy, wx = keras.ops.cast(wy, images.dtype), keras.ops.cast(wx, images.dtype)
    top = corner(y0, x0) * (1 - wx) + corner(y0, x0 + 1) * wx
    bottom = corner(y0 + 1, x0) * (1 - wx) + corner(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


@keras.saving.register_keras_serializable(package="kerastoolkit")
class RandomJpegQuality(_Augmentation):
    """JPEG compression artefacts: each image re-encoded at a random quality.

    Quality `q` is drawn uniformly per image from `[min_quality,
    max_quality]`; the image is mapped from `value_range` to [0, 1], encoded
    and decoded by TensorFlow's JPEG codec (`tf.image.adjust_jpeg_quality`),
    and mapped back. TensorFlow backend only (the codec needs TensorFlow
    tensors and there is no JPEG codec in `keras.ops`); not
    XLA-compilable, so the layer sets
    `supports_jit = False` and `jit_compile="auto"` leaves XLA off. Images
    need 1 or 3 channels. keras-cv's layer of the same name is not used:
    see the module docstring.

    Args:
        min_quality: lowest JPEG quality, in [1, 100]. Defaults to `50`.
        max_quality: highest JPEG quality, in [min_quality, 100]. Defaults
            to `95`.
        value_range: `(low, high)` of the images. Defaults to `(0, 255)`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for qualities outside [1, 100] or out of order.

    Example:
    >>> jpeg = kt.layers.RandomJpegQuality(30, 90, value_range=(0, 1), seed=0)
    """

    def __init__(self, min_quality=50, max_quality=95, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        self.min_quality = _checks.check_int("min_quality", min_quality, 1)
        self.max_quality = _checks.check_int("max_quality", max_quality, self.min_quality)
        if self.max_quality > 100:
            raise ValueError(
                f"Argument `max_quality` must be at most 100. Received: max_quality={max_quality}"
            )
        self.supports_jit = False

    def _augment(self, images):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "RandomJpegQuality uses TensorFlow's JPEG codec and needs the TensorFlow "
                f"backend. Received: backend={keras.backend.backend()!r}"
            )
        import tensorflow as tf

        if images.shape[-1] not in (1, 3):
            raise ValueError(
                f"RandomJpegQuality needs 1 or 3 channels. Received: inputs.shape={tuple(images.shape)}"
            )
        low, high = self.value_range
        unit = tf.clip_by_value((tf.cast(images, tf.float32) - low) / (high - low), 0.0, 1.0)
        quality = keras.random.randint(
            (tf.shape(images)[0],), self.min_quality, self.max_quality + 1, seed=self.seed_generator
        )
        encoded = tf.map_fn(
            lambda args: tf.image.adjust_jpeg_quality(args[0], args[1]),
            (unit, tf.cast(quality, tf.int32)),
            fn_output_signature=tf.float32,
        )
        encoded = tf.ensure_shape(encoded, unit.shape)
        return tf.cast(encoded * (high - low) + low, images.dtype)

    def get_config(self):
        return {**super().get_config(), "min_quality": self.min_quality, "max_quality": self.max_quality}


@keras.saving.register_keras_serializable(package="kerastoolkit")
class MultiCrop(_Augmentation):
    """Several crops of each image, stacked: `(batch, num_crops, height, width, channels)`.

    In training (`training=True`) the crops are at random positions (uniform
    over the valid offsets, independently per image and crop); at inference
    they are fixed: the centre, then the top-left, top-right, bottom-left and
    bottom-right corners (the first `num_crops` of them), as in the
    multi-crop evaluation of Krizhevsky et al. Train on the crops by folding
    them into the batch (`keras.ops.reshape(crops, (-1, h, w, c))`, labels
    repeated `num_crops` times), or average a model's predictions over them.
    Written with `keras.ops` (a gather).

    Args:
        height: crop height, at most the image's.
        width: crop width, at most the image's.
        num_crops: crops per image, from 1 to 5. Defaults to `5`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ValueError: for a non-positive size, `num_crops` outside 1..5, or a
            crop larger than the image.

    Example:
    >>> crops = kt.layers.MultiCrop(24, 24, num_crops=5)(images, training=False)
    >>> crops.shape  # (batch, 5, 24, 24, channels)

    References:
        Krizhevsky, Sutskever, Hinton, ImageNet classification with deep
        convolutional neural networks, NeurIPS 2012.
    """

    def __init__(self, height, width, num_crops=5, seed=None, **kwargs):
        super().__init__(value_range=(0, 1), seed=seed, **kwargs)
        self.height = _checks.check_int("height", height, 1)
        self.width = _checks.check_int("width", width, 1)
        self.num_crops = _checks.check_int("num_crops", num_crops, 1)
        if self.num_crops > 5:
            raise ValueError(f"Argument `num_crops` must be from 1 to 5. Received: num_crops={num_crops}")

    def call(self, inputs, training=True):
        images = keras.ops.cast(inputs, self.compute_dtype)
        single = len(images.shape) == 3
        if single:
            images = keras.ops.expand_dims(images, 0)
        height, width = images.shape[1], images.shape[2]
        if height < self.height or width < self.width:
            raise ValueError(
                f"MultiCrop's crops ({self.height}x{self.width}) must fit in the images. "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )
        batch = keras.ops.shape(images)[0]
        free_y, free_x = height - self.height, width - self.width
        if training:
            u = keras.random.uniform((batch, self.num_crops, 2), seed=self.seed_generator)
            off_y = keras.ops.floor(u[..., 0] * (free_y + 1))
            off_x = keras.ops.floor(u[..., 1] * (free_x + 1))
        else:
            fixed = [(free_y // 2, free_x // 2), (0, 0), (0, free_x), (free_y, 0), (free_y, free_x)]
            fixed = keras.ops.convert_to_tensor(fixed[: self.num_crops], dtype="float32")
            zeros = keras.ops.zeros((batch, self.num_crops))
            off_y, off_x = zeros + fixed[:, 0], zeros + fixed[:, 1]
        rows = keras.ops.arange(self.height, dtype="float32")
        cols = keras.ops.arange(self.width, dtype="float32")
        src_y = off_y[:, :, None, None] + rows[:, None] + 0.0 * cols[None, :]
        src_x = off_x[:, :, None, None] + cols[None, :] + 0.0 * rows[:, None]
        crops = _sample(images, src_y, src_x, "nearest", "nearest", 0.0)
        return keras.ops.squeeze(crops, 0) if single else crops

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 3:
            return (self.num_crops, self.height, self.width, input_shape[-1])
        return (input_shape[0], self.num_crops, self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        del config["value_range"]
        config.update({"height": self.height, "width": self.width, "num_crops": self.num_crops})
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class TrainingOnly(keras.layers.Layer):
    """Runs `layer` when `training=True` and nothing otherwise, whoever calls it.

    Keras's augmentation layers (core and these) augment whenever `training`
    is not `False`: `model(x)` without `training=...`, and the serving
    function of `model.export(...)` (which calls the model without
    `training`), augment too. Verified on Keras 3.15: an exported model with
    `keras.layers.RandomRotation` inside rotates the images it serves.
    Wrapping the augmentation in `TrainingOnly` makes it active in `fit`
    only, so the exported model is deterministic. Its output has the
    layer's compute dtype on both paths (floats, like Keras's augmentation
    layers, also for `uint8` inputs).

    Args:
        layer: the augmentation layer or `keras.Sequential` to wrap.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        TypeError: if `layer` is not a Keras layer.

    Example:
    >>> augment = kt.layers.TrainingOnly(kt.data.augmentation("geometric"))
    >>> x = augment(inputs)  # in a functional model
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"Argument `layer` must be a Keras layer. Received: layer={layer!r}")
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, inputs, training=False):
        # One dtype on both paths, as Keras's augmentation layers give: the
        # compute dtype (raw uint8 images come out as floats either way).
        if training:
            return keras.ops.cast(self.layer(inputs, training=True), self.compute_dtype)
        return keras.ops.cast(inputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, training=False):
        spec = self.layer.compute_output_spec(inputs, training=True)
        return keras.KerasTensor(spec.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config["layer"] = keras.saving.serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerastoolkit")
class RandomShear(keras.layers.RandomShear):
    """`keras.layers.RandomShear` whose saved config loads again.

    Keras 3.15's `RandomShear(x_factor=f)` stores `x_factor=(-f, f)` in its
    config, which its own constructor then rejects ("The `factor` argument
    should be a number ... in the range [0, 1.0]"): a model holding it
    cannot be reloaded from `.keras`, cloned or copied. This subclass writes
    the symmetric range back as the number `f`. Everything else is Keras's.

    Args:
        x_factor, y_factor, **kwargs: as `keras.layers.RandomShear`.

    Example:
    >>> shear = kt.layers.RandomShear(0.1, 0.1, seed=0)
    """

    def get_config(self):
        config = super().get_config()
        for key in ("x_factor", "y_factor"):
            value = config.get(key)
            if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == -value[1]:
                config[key] = float(value[1])
        return config


@keras.saving.register_keras_serializable(package="kerastoolkit")
class AugmentationPolicy(keras.Sequential):
    """A `keras.Sequential` of augmentation layers that takes one image or a batch.

    A plain `keras.Sequential` fixes its input rank on its first call: built
    on one image (a `tf.data` map before `.batch()`) it rejects batches, and
    built on batches it rejects one image. This one is built for batches
    `(batch, height, width, channels)` whatever it first sees, and runs one
    image `(height, width, channels)` as a batch of one, so the same policy
    object serves a `dataset.map(...)` before or after batching and a model
    (where it is active in `fit` only when wrapped in `TrainingOnly`).
    A policy without layers (every setting off) is the identity. Everything
    else is `keras.Sequential`'s. `kt.data.augmentation` returns its
    policies as this class.

    Args:
        layers: the augmentation layers, in order. Defaults to `None`.
        trainable: as `keras.Sequential`. Defaults to `True`.
        name: the model name. Defaults to `None`.

    Example:
    >>> policy = kt.layers.AugmentationPolicy([keras.layers.RandomFlip(seed=0)])
    >>> policy(image).shape == image.shape and policy(images).shape == images.shape
    """

    def build(self, input_shape=None):
        if not self.layers:  # an empty policy (every setting off) is the identity
            self.built = True
            return
        if isinstance(input_shape, (tuple, list)) and len(input_shape) == 3:
            input_shape = (None,) + tuple(input_shape)
        elif isinstance(input_shape, (tuple, list)) and len(input_shape) == 4:
            input_shape = (None,) + tuple(input_shape[1:])
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not self.layers:
            return inputs
        if len(inputs.shape) == 3:
            outputs = super().call(keras.ops.expand_dims(inputs, 0), training=training, mask=mask, **kwargs)
            return keras.ops.squeeze(outputs, 0)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def compute_output_spec(self, inputs, training=None, mask=None, **kwargs):
        if not self.layers:
            return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)
        if len(inputs.shape) == 3:
            batched = keras.KerasTensor((None,) + tuple(inputs.shape), dtype=inputs.dtype)
            spec = super().compute_output_spec(batched, training=training, mask=mask, **kwargs)
            return keras.KerasTensor(tuple(spec.shape[1:]), dtype=spec.dtype)
        return super().compute_output_spec(inputs, training=training, mask=mask, **kwargs)

    def compute_output_shape(self, input_shape):
        if not self.layers:
            return tuple(input_shape)
        if len(input_shape) == 3:
            return tuple(super().compute_output_shape((None,) + tuple(input_shape))[1:])
        return super().compute_output_shape(input_shape)
