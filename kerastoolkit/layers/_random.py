"""Seed handling shared by the random layers."""

import keras

from kerastoolkit import _checks


def check_seed(seed):
    """`seed` is None or an int; returns it."""
    if seed is not None and not _checks.is_int(seed):
        raise TypeError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
    return seed
