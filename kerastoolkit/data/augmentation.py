"""`kt.data.augmentation`: named augmentation policies as `keras.Sequential` models.

A policy is a `kt.layers.AugmentationPolicy`, a `keras.Sequential` of
augmentation layers (Keras core's, and `kt.layers`' for what core lacks) that
takes one image `(height, width, channels)` as well as a batch. It works in
both places:

- in a `tf.data` pipeline on the CPU, before or after batching:
  `dataset.map(lambda x, y: (augment(x, training=True), y))`;
- inside a model, right after the input: active in `fit`, the identity in
  `predict`, `evaluate` and an exported SavedModel.

| policy | layers |
| --- | --- |
| `"geometric"` | `RandomFlip("horizontal")` (unless `horizontal_flip=False`), `RandomRotation`, `RandomShear`, crops: `RandomTranslation` (shifted crops) and `RandomZoom` (scaled crops) |
| `"photometric"` | `RandomBrightness`, `RandomContrast`; with `channels=3` also `RandomSaturation`, `RandomHue` |
| `"other"` | `kt.layers.RandomGaussianNoise`, `SaltAndPepperNoise`, `RandomJpegQuality` (TensorFlow backend only: left out elsewhere), `RandomLensDistortion` |
| `"randaugment"`, `"rand-mM-nN"` | `keras.layers.RandAugment(factor=M/10, num_ops=N)` (timm's strings: magnitude `M` of 10, `N` operations; plain `"randaugment"` is `"rand-m9-n2"`) |
| `"autoaugment"` | `kt.layers.AutoAugment`, the paper's ImageNet policy from Keras core layers |

Policies must suit the data: mirrored digits are not digits. Pass
`horizontal_flip=False` (and small rotations) for such data, or use
`augmentation_for(dataset_name, policy)`, which knows the toolkit's
datasets: no flips for `digits`, flips for `fashion_mnist` (clothes are
left-right symmetric), nothing for `mnist1d` (not images).
"""

import difflib
import re

import keras

from kerastoolkit.layers.augmentation import RandomShear

POLICIES = ("geometric", "photometric", "other", "randaugment", "autoaugment")

# Each policy's overridable settings and their defaults.
DEFAULTS = {
    "geometric": {"rotation": 0.05, "shear": 0.1, "translation": 0.1, "zoom": 0.1, "fill_mode": "constant"},
    "photometric": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05},
    "other": {"noise": 0.03, "salt_pepper": 0.01, "jpeg_quality": (50, 95), "lens": 0.15},
    "randaugment": {"magnitude": 9, "num_ops": 2},
    "autoaugment": {},
}

# What suits each of the toolkit's datasets.
DATASET_SETTINGS = {
    "digits": {"horizontal_flip": False, "channels": 1, "geometric": {"rotation": 0.03, "translation": 0.1}},
    "fashion_mnist": {"horizontal_flip": True, "channels": 1, "geometric": {}},
}

_RAND = re.compile(r"^rand(?:-m(?P<m>\d+(?:\.\d+)?))?(?:-n(?P<n>\d+))?$")


def _unknown_policy(policy):
    names = list(POLICIES) + ["rand-m9-n2"]
    close = difflib.get_close_matches(str(policy), names, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"Unknown augmentation policy. Available: {', '.join(POLICIES)}, or timm-style "
        f"'rand-m<magnitude>-n<count>'.{hint} Received: policy={policy!r}"
    )


def parse_policy(policy):
    """`(name, settings)` for a policy name or a timm-style `"rand-m9-n2"` string.

    Raises:
        ValueError: for an unknown policy, with the closest names.
    """
    if not isinstance(policy, str):
        raise TypeError(f"Argument `policy` must be a string. Received: policy={policy!r}")
    if policy in POLICIES:
        return policy, {}
    match = _RAND.match(policy)
    if match and (match.group("m") or match.group("n")):
        settings = {}
        if match.group("m"):
            settings["magnitude"] = float(match.group("m"))
        if match.group("n"):
            settings["num_ops"] = int(match.group("n"))
        return "randaugment", settings
    raise _unknown_policy(policy)


def _check_overrides(name, overrides):
    unknown = sorted(set(overrides) - set(DEFAULTS[name]))
    if unknown:
        allowed = ", ".join(DEFAULTS[name]) or "none"
        raise ValueError(
            f"Policy {name!r} has no setting {unknown[0]!r} (its settings: {allowed}). "
            f"Received: {unknown[0]}={overrides[unknown[0]]!r}"
        )


def augmentation(
    policy,
    *,
    value_range=(0, 1),
    channels=None,
    horizontal_flip=True,
    seed=None,
    name=None,
    **overrides,
):
    """A named augmentation policy as a `keras.Sequential`.

    Args:
        policy: `"geometric"`, `"photometric"`, `"other"`, `"randaugment"`,
            `"autoaugment"`, or a timm-style `"rand-m9-n2"` (RandAugment with
            magnitude 9 of 10 and 2 operations per image).
        value_range: `(low, high)` of the images: `(0, 1)` for
            `kt.data.load`'s inputs, `(0, 255)` for raw `uint8`. Defaults to
            `(0, 1)`.
        channels: channel count; `3` adds saturation and hue to
            `"photometric"`. Defaults to `None` (channel-agnostic layers only).
        horizontal_flip: include a random horizontal flip in `"geometric"`.
            Set `False` for data whose mirror image means something else
            (digits, text). Defaults to `True`.
        seed: integer seed; each layer gets `seed + i`. Defaults to `None`.
        name: the Sequential's name. Defaults to `"augmentation_<policy>"`.
        **overrides: the policy's settings (see `DEFAULTS`): e.g.
            `rotation=0.1` (fraction of a full turn), `shear`,
            `translation`, `zoom`, `fill_mode` for `"geometric"`;
            `brightness`, `contrast`, `saturation`, `hue` for
            `"photometric"`; `noise` (std as a fraction of the range),
            `salt_pepper` (rate), `jpeg_quality` (`(min, max)`), `lens`
            (distortion range) for `"other"` (`None` leaves a layer out);
            `magnitude` (0-10), `num_ops` for `"randaugment"`.

    Returns:
        An unbuilt `kt.layers.AugmentationPolicy` (a `keras.Sequential` of
        the augmentation layers that takes one image or a batch).

    Raises:
        ValueError: for an unknown policy (the closest names are suggested),
            an unknown setting, or a bad value (negative noise...).

    Example:
    >>> augment = kt.data.augmentation("geometric", horizontal_flip=False, seed=0)
    >>> train = kt.data.load("digits", batch_size=32).map(
    ...     lambda x, y: (augment(x, training=True), y))

    References:
        Cubuk et al., RandAugment, NeurIPS 2020; Cubuk et al., AutoAugment,
        CVPR 2019; Wightman, timm (`rand-m9-n2` strings).
    """
    import kerastoolkit.layers as kt_layers

    policy_name, settings = parse_policy(policy)
    _check_overrides(policy_name, overrides)
    settings = {**DEFAULTS[policy_name], **settings, **overrides}
    if not isinstance(horizontal_flip, bool):
        raise TypeError(
            f"Argument `horizontal_flip` must be a bool. Received: horizontal_flip={horizontal_flip!r}"
        )
    if channels is not None and (not isinstance(channels, int) or channels < 1):
        raise ValueError(f"Argument `channels` must be a positive integer or None. Received: channels={channels!r}")
    low, high = kt_layers.augmentation._check_value_range(value_range)
    counter = iter(range(1, 1000))

    def next_seed():
        return None if seed is None else seed + next(counter)

    layers = []
    if policy_name == "geometric":
        fill = {"fill_mode": settings["fill_mode"], "fill_value": low} if settings["fill_mode"] == "constant" else {
            "fill_mode": settings["fill_mode"]
        }
        if horizontal_flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=next_seed()))
        if settings["rotation"]:
            layers.append(keras.layers.RandomRotation(settings["rotation"], seed=next_seed(), **fill))
        if settings["shear"]:
            layers.append(
                RandomShear(settings["shear"], settings["shear"], seed=next_seed(), **fill)  # reloads, unlike Keras 3.15's
            )
        if settings["translation"]:
            t = settings["translation"]
            layers.append(keras.layers.RandomTranslation(t, t, seed=next_seed(), **fill))
        if settings["zoom"]:
            layers.append(keras.layers.RandomZoom(settings["zoom"], seed=next_seed(), **fill))
    elif policy_name == "photometric":
        if settings["brightness"]:
            layers.append(
                keras.layers.RandomBrightness(settings["brightness"], value_range=(low, high), seed=next_seed())
            )
        if settings["contrast"]:
            layers.append(
                keras.layers.RandomContrast(settings["contrast"], value_range=(low, high), seed=next_seed())
            )
        if channels == 3:
            if settings["saturation"]:
                s = settings["saturation"]
                layers.append(
                    keras.layers.RandomSaturation((0.5 - s / 2, 0.5 + s / 2), value_range=(low, high), seed=next_seed())
                )
            if settings["hue"]:
                layers.append(keras.layers.RandomHue(settings["hue"], value_range=(low, high), seed=next_seed()))
    elif policy_name == "other":
        from kerastoolkit import _checks

        for key in ("noise", "salt_pepper"):  # errors name the policy's setting
            _checks.check_real(key, settings[key], 0.0, allow_none=True)
        if _checks.is_real(settings["lens"]):
            _checks.check_real("lens", settings["lens"], 0.0, 1.0, high_open=True)
        if settings["noise"] is not None:
            layers.append(kt_layers.RandomGaussianNoise(settings["noise"], value_range=(low, high), seed=next_seed()))
        if settings["salt_pepper"] is not None:
            layers.append(kt_layers.SaltAndPepperNoise(settings["salt_pepper"], value_range=(low, high), seed=next_seed()))
        if settings["jpeg_quality"] is not None and keras.backend.backend() == "tensorflow" and channels in (None, 1, 3):
            q_min, q_max = settings["jpeg_quality"]
            layers.append(kt_layers.RandomJpegQuality(q_min, q_max, value_range=(low, high), seed=next_seed()))
        if settings["lens"] is not None:
            layers.append(kt_layers.RandomLensDistortion(settings["lens"], value_range=(low, high), seed=next_seed()))
    elif policy_name == "randaugment":
        magnitude, num_ops = settings["magnitude"], settings["num_ops"]
        if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not 0 <= magnitude <= 10:
            raise ValueError(f"Argument `magnitude` must be in [0, 10]. Received: magnitude={magnitude!r}")
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(f"Argument `num_ops` must be a positive integer. Received: num_ops={num_ops!r}")
        layers.append(
            keras.layers.RandAugment(
                value_range=(low, high), num_ops=num_ops, factor=magnitude / 10.0, seed=next_seed()
            )
        )
    else:  # autoaugment
        layers.append(kt_layers.AutoAugment(value_range=(low, high), seed=next_seed()))
    safe = re.sub(r"[^0-9a-zA-Z_]", "_", str(policy))
    return kt_layers.AugmentationPolicy(layers, name=name or f"augmentation_{safe}")


def augmentation_for(dataset_name, policy, *, raw=False, seed=None, **overrides):
    """The policy suited to one of the toolkit's datasets, or `None` for no policy.

    Flips and rotations follow `DATASET_SETTINGS` (no horizontal flip for
    `digits`); the value range is `(0, 1)` (`kt.data.load`'s inputs) or the
    raw range (`(0, 255)` for Fashion-MNIST, `(0, 16)` for digits) when
    `raw=True`.

    Args:
        dataset_name: `"digits"` or `"fashion_mnist"`.
        policy: a policy for `augmentation`, or `None`/`"none"` for none.
        raw: the images are the raw stored values, not scaled to [0, 1].
            Defaults to `False`.
        seed: integer seed. Defaults to `None`.
        **overrides: settings passed on to `augmentation`.

    Returns:
        A `keras.Sequential`, or `None`.

    Raises:
        ValueError: for a dataset that is not images (mnist1d) or unknown, or
            a bad policy.

    Example:
    >>> augment = kt.data.augmentation_for("digits", "geometric", seed=0)
    """
    from kerastoolkit.data import datasets

    if policy is None or policy == "none":
        return None
    meta = datasets.info(dataset_name)
    if dataset_name not in DATASET_SETTINGS:
        raise ValueError(
            f"Augmentation policies are for image datasets ({', '.join(DATASET_SETTINGS)}); "
            f"{dataset_name!r} is not one. Received: dataset_name={dataset_name!r}"
        )
    known = DATASET_SETTINGS[dataset_name]
    policy_name, _ = parse_policy(policy)
    settings = dict(known.get(policy_name, {})) if policy_name == "geometric" else {}
    settings.update(overrides)
    value_range = (0, meta.scale) if raw else (0, 1)
    return augmentation(
        policy,
        value_range=value_range,
        channels=known["channels"],
        horizontal_flip=known["horizontal_flip"],
        seed=seed,
        name=f"{dataset_name}_augmentation",
        **settings,
    )


def augment_dataset(dataset, augment):
    """Maps `augment` over a `tf.data.Dataset` of `(x, y[, w])` on the CPU, in parallel.

    Integer images (raw `uint8` pixels) come out rounded and saturated to
    their dtype, so a model whose input is `uint8` trains on them as served.

    Args:
        dataset: a (batched or unbatched) dataset of tuples whose first item
            is images.
        augment: a layer or Sequential (e.g. from `augmentation`).

    Returns:
        The mapped dataset.
    """
    import tensorflow as tf

    def apply(x, *rest):
        # One image at a time (before batching): as a batch of one, so that
        # an unbuilt Sequential is not built for batches of rows.
        single = x.shape.rank == 3
        augmented = augment(x[None] if single else x, training=True)
        augmented = augmented[0] if single else augmented
        if x.dtype.is_integer:  # raw pixels stay raw: round and saturate back
            augmented = tf.saturate_cast(tf.round(augmented), x.dtype)
        return (augmented, *rest)

    return dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
