"""The lecture's named initializations, as presets over Keras's VarianceScaling.

| name | weight variance | the same as |
| --- | --- | --- |
| `xavier_fan_in` | `σ² = 1/n_in` | `keras.initializers.LecunNormal` |
| `xavier` | `σ² = 2/(n_in + n_out)` | `keras.initializers.GlorotNormal` |
| `kaiming` | `σ² = 2/n_in` | `keras.initializers.HeNormal` |
| `zeros` (biases) | `0` | `keras.initializers.Zeros` |

Every function returns a Keras initializer object (`VarianceScaling` or
`Zeros`), not a toolkit class: it serializes as Keras's own and loads without
kerastoolkit. `n_in`/`n_out` are Keras's fans (for a convolution kernel,
`n_in = kernel_size · in_channels`).
"""

import difflib

import keras

_DISTRIBUTIONS = ("untruncated_normal", "truncated_normal", "uniform")


def _variance_scaling(scale, mode, distribution, seed):
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(
            f"Argument `distribution` must be one of {_DISTRIBUTIONS}. "
            f"Received: distribution={distribution!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
    return keras.initializers.VarianceScaling(
        scale=scale, mode=mode, distribution=distribution, seed=seed
    )


def xavier_fan_in(distribution="untruncated_normal", seed=None):
    """Xavier initialization with `σ² = 1/n_in` (the lecture's first form).

    Args:
        distribution: `"untruncated_normal"` (a Gaussian with exactly that
            variance), `"truncated_normal"` (Keras's, cut at 2σ and rescaled
            to the same variance) or `"uniform"` (`U(-a, a)`, `a² = 3σ²`).
            Defaults to `"untruncated_normal"`.
        seed: Integer seed, or `None`. Defaults to `None`.

    Returns:
        `keras.initializers.VarianceScaling(scale=1, mode="fan_in")`.

    Raises:
        ValueError: for an unknown `distribution`.
        TypeError: if `seed` is not an integer.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    layer = keras.layers.Dense(64, kernel_initializer=kt.initializers.xavier_fan_in(seed=0))
    ```

    References:
        - Glorot & Bengio, 2010, "Understanding the difficulty of training
          deep feedforward neural networks", AISTATS.
    """
    return _variance_scaling(1.0, "fan_in", distribution, seed)


def xavier(distribution="untruncated_normal", seed=None):
    """Xavier (Glorot) initialization with `σ² = 2/(n_in + n_out)`.

    Args:
        distribution: See `xavier_fan_in`. Defaults to `"untruncated_normal"`.
        seed: Integer seed, or `None`. Defaults to `None`.

    Returns:
        `keras.initializers.VarianceScaling(scale=1, mode="fan_avg")`.

    Raises:
        ValueError: for an unknown `distribution`.
        TypeError: if `seed` is not an integer.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    layer = keras.layers.Dense(64, activation="tanh", kernel_initializer=kt.initializers.xavier())
    ```

    References:
        - Glorot & Bengio, 2010, "Understanding the difficulty of training
          deep feedforward neural networks", AISTATS.
    """
    return _variance_scaling(1.0, "fan_avg", distribution, seed)


def kaiming(distribution="untruncated_normal", seed=None):
    """Kaiming (He) initialization with `σ² = 2/n_in`, for ReLU networks.

    Args:
        distribution: See `xavier_fan_in`. Defaults to `"untruncated_normal"`.
        seed: Integer seed, or `None`. Defaults to `None`.

    Returns:
        `keras.initializers.VarianceScaling(scale=2, mode="fan_in")`.

    Raises:
        ValueError: for an unknown `distribution`.
        TypeError: if `seed` is not an integer.

    Example:

    ```python
    import keras
    import kerastoolkit as kt
    layer = keras.layers.Dense(64, activation="relu", kernel_initializer=kt.initializers.kaiming())
    ```

    References:
        - He, Zhang, Ren & Sun, 2015, "Delving Deep into Rectifiers",
          ICCV (arXiv:1502.01852).
    """
    return _variance_scaling(2.0, "fan_in", distribution, seed)


def zeros():
    """Biases at zero, the lecture's rule. Returns `keras.initializers.Zeros()`."""
    return keras.initializers.Zeros()


PRESETS = {
    "xavier_fan_in": xavier_fan_in,
    "xavier": xavier,
    "kaiming": kaiming,
    "zeros": zeros,
}


def get(name, **kwargs):
    """The initializer preset `name` (see the module table), built with `kwargs`.

    Args:
        name: One of `"xavier_fan_in"`, `"xavier"`, `"kaiming"`, `"zeros"`.
        **kwargs: `distribution` and `seed` for the variance-scaling ones.

    Returns:
        A Keras initializer.

    Raises:
        ValueError: for an unknown name, suggesting the closest ones.
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), PRESETS, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown initializer preset.{hint} Known: {sorted(PRESETS)}. "
            f"Received: name={name!r}"
        )
    return PRESETS[name](**kwargs)
