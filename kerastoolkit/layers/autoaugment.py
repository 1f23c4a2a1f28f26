"""`AutoAugment`: the paper's learned ImageNet policy, built from Keras core layers."""

import keras

from kerastoolkit import _checks
from kerastoolkit.layers.augmentation import RandomShear

# Cubuk et al. 2019, Appendix, the ImageNet policy: 25 sub-policies of two
# operations (name, probability, magnitude level 0-9; None: no magnitude).
IMAGENET_POLICY = (
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, None)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
    (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("equalize", 0.4, None), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, None)),
    (("posterize", 0.8, 5), ("equalize", 1.0, None)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
    (("equalize", 0.6, None), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)),
    (("rotate", 0.4, 9), ("equalize", 0.6, None)),
    (("equalize", 0.0, None), ("equalize", 0.8, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)),
    (("sharpness", 0.4, 7), ("invert", 0.6, None)),
    (("shear_x", 0.6, 5), ("equalize", 1.0, None)),
    (("color", 0.4, 0), ("equalize", 0.6, None)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
)


def _core_layer(name, level, value_range, seed):
    """The Keras core layer for one operation at a magnitude level 0-9 (10 bins, as the paper's code)."""
    v = level / 9.0 if level is not None else None
    if name == "rotate":  # up to 30 degrees
        return keras.layers.RandomRotation(30.0 * v / 360.0, fill_mode="constant", seed=seed)
    if name == "shear_x":  # up to 0.3
        return RandomShear(x_factor=0.3 * v, y_factor=0.0, fill_mode="constant", seed=seed)
    if name == "posterize":  # 8 - round(level / 2.25) bits, at least 1 kept... Keras keeps `factor` bits
        return keras.layers.RandomPosterization(max(1, 8 - round(level / 2.25)), value_range=value_range, seed=seed)
    if name == "solarize":  # threshold from the top of the range down to 0
        threshold = 1.0 - v
        return keras.layers.Solarization(
            addition_factor=0.0, threshold_factor=(threshold, threshold), value_range=value_range, seed=seed
        )
    if name in ("color", "contrast", "sharpness"):  # enhance by 1 ± 0.9·v
        factor = 0.9 * v
        if name == "contrast":
            return keras.layers.RandomContrast(factor, value_range=value_range, seed=seed)
        if name == "color":
            return keras.layers.RandomColorDegeneration(factor, value_range=value_range, seed=seed)
        return keras.layers.RandomSharpness(factor, value_range=value_range, seed=seed)
    if name == "auto_contrast":
        return keras.layers.AutoContrast(value_range=value_range)
    if name == "equalize":
        return keras.layers.Equalization(value_range=value_range)
    if name == "invert":
        return keras.layers.RandomInvert(factor=1.0, value_range=value_range, seed=seed)
    raise ValueError(f"Unknown AutoAugment operation. Received: name={name!r}")


@keras.saving.register_keras_serializable(package="kerastoolkit")
class AutoAugment(keras.layers.Layer):
    """AutoAugment's ImageNet policy (Cubuk et al. 2019) from Keras core layers.

    For each batch one of the policy's 25 sub-policies is drawn uniformly;
    each of its two operations is applied to each image with the
    sub-policy's probability and at its magnitude (level 0-9 of the paper's
    ranges: rotation up to 30°, shear up to 0.3, posterize 8 down to 4 bits,
    solarize threshold from the top of the range down, colour / contrast /
    sharpness by up to ±0.9). The operations are Keras core layers
    (`RandomRotation`, `RandomShear`, `RandomPosterization`, `Solarization`,
    `RandomColorDegeneration`, `RandomContrast`, `RandomSharpness`,
    `AutoContrast`, `Equalization`, `RandomInvert`); keras-cv 0.9.0 has no
    AutoAugment. Where the paper uses a fixed magnitude with a random sign,
    Keras's layers draw uniformly within `[-magnitude, magnitude]`. One
    sub-policy per batch (like Keras's own `RandAugment`, which draws its
    operations per batch) rather than per image.

    The paper learned this policy on ImageNet: its Invert and Solarize
    operations change what grayscale clothes or digits look like a lot, so
    check its accuracy on your data (`benchmarks/augmentation.py` does).
    Identity at inference. Takes a batch `(batch, height, width, channels)`
    or one image `(height, width, channels)` (a `tf.data` map before
    `.batch()`).

    Args:
        value_range: `(low, high)` of the images. Defaults to `(0, 255)`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:
    >>> augment = kt.layers.AutoAugment(value_range=(0, 1), seed=0)
    >>> augmented = augment(images)

    References:
        Cubuk, Zoph, Mané, Vasudevan, Le, AutoAugment: Learning
        Augmentation Strategies from Data, CVPR 2019.
    """

    def __init__(self, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        from kerastoolkit.layers.augmentation import _check_seed, _check_value_range

        self.value_range = _check_value_range(value_range)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # One Keras layer per operation (tracked, so saved in order), and the
        # sub-policies as (index into `operations`, probability) pairs.
        self.operations = []
        self._sub_policies = []
        for i, pair in enumerate(IMAGENET_POLICY):
            sub_policy = []
            for j, (name, probability, level) in enumerate(pair):
                op_seed = None if seed is None else seed + 2 * i + j + 1
                self.operations.append(_core_layer(name, level, self.value_range, op_seed))
                sub_policy.append((len(self.operations) - 1, probability))
            self._sub_policies.append(tuple(sub_policy))

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 3:  # one image: the operations see a batch of one
            input_shape = (None,) + input_shape
        for layer in self.operations:
            layer.build(input_shape)

    def call(self, inputs, training=True):
        images = keras.ops.cast(inputs, self.compute_dtype)
        if not training:
            return images
        if len(images.shape) == 3:  # one image (a tf.data map before batching)
            return keras.ops.squeeze(self._augment(keras.ops.expand_dims(images, 0)), 0)
        if len(images.shape) != 4:
            raise ValueError(
                "AutoAugment takes images (batch, height, width, channels) or "
                f"(height, width, channels). Received: inputs.shape={tuple(inputs.shape)}"
            )
        return self._augment(images)

    def _augment(self, images):
        batch = keras.ops.shape(images)[0]
        index = keras.random.randint((), 0, len(self._sub_policies), seed=self.seed_generator)
        draws = keras.random.uniform((2, batch, 1, 1, 1), seed=self.seed_generator)

        def branch(sub_policy):
            def apply(x):
                for k, (op, probability) in enumerate(sub_policy):
                    if probability <= 0:
                        continue
                    changed = keras.ops.cast(self.operations[op](x, training=True), x.dtype)
                    x = keras.ops.where(draws[k] < probability, changed, x)
                return x

            return apply

        branches = [branch(sub) for sub in self._sub_policies]
        try:  # eager: run only the drawn sub-policy (JAX's switch would compile all 25)
            chosen = int(keras.ops.convert_to_numpy(index))
        except Exception:  # noqa: BLE001  (traced: a graph tensor or a JAX tracer)
            return keras.ops.switch(index, branches, images)
        return branches[chosen](images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, training=True):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "seed": self.seed})
        return config
