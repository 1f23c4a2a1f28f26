"""TTA views matched to a recipe's training augmentation (`views_for_augmentation`, `Recipe.tta_views`)."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit.models.tta import views_for_augmentation


def test_flip_and_translation_give_the_flip_and_one_pixel_shifts():
    augment = kt.data.augmentation("geometric", rotation=0.0, shear=0.0, zoom=0.0, translation=0.1)
    assert views_for_augmentation(augment, (28, 28, 1)) == ["identity", "hflip", "shift:1"]
    # Wrapped for use inside a model, the same policy gives the same views.
    wrapped = kt.layers.TrainingOnly(augment)
    assert views_for_augmentation(wrapped, (28, 28, 1)) == ["identity", "hflip", "shift:1"]


@pytest.mark.parametrize(
    "augment, shape, expected",
    [
        (None, (28, 28, 1), ["identity"]),
        # Mirrored digits are other symbols: the digits policy does not flip, and
        # 10% of 8 pixels is under one pixel, so no shift either.
        (kt.data.augmentation_for("digits", "geometric"), (8, 8, 1), ["identity"]),
        (keras.layers.RandomFlip("vertical"), (28, 28, 1), ["identity", "vflip"]),
        (keras.layers.RandomFlip("horizontal_and_vertical"), (28, 28, 1), ["identity", "hflip", "vflip"]),
        # A shift fills with zeros; a reflected translation never draws that image.
        (keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"), (28, 28, 1), ["identity"]),
        # Only downward/rightward shifts drawn: not the four-way shift views.
        (keras.layers.RandomTranslation((0.0, 0.2), (0.0, 0.2), fill_mode="constant"), (28, 28, 1), ["identity"]),
        (keras.layers.RandomTranslation(0.05, 0.05, fill_mode="constant"), (28, 28, 1), ["identity", "shift:1"]),
        (keras.Sequential([keras.layers.RandomContrast(0.2)]), (28, 28, 1), ["identity"]),
    ],
)
def test_only_views_the_policy_itself_draws(augment, shape, expected):
    assert views_for_augmentation(augment, shape) == expected


def test_a_recipe_picks_its_views_and_the_predictor_averages_them():
    recipe = kt.presets.get(
        "adam", augmentation="geometric", dataset="fashion_mnist",
        augmentation_options={"rotation": 0.0, "shear": 0.0, "zoom": 0.0, "translation": 0.08},
    )
    assert recipe.tta_views() == ["identity", "hflip", "shift:1"]  # 28x28: 2.2 pixels of translation
    assert kt.presets.get("adam").tta_views() == ["identity"]

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    tta = kt.models.TTAPredictor.for_recipe(model, recipe)
    assert tta.views == ["identity", "hflip", "shift:1"] and tta.num_views == 6
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")

    def shifted(a, dy, dx):  # zero-filled translation, in NumPy
        out = np.zeros_like(a)
        h, w = a.shape[1:3]
        out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = a[:, max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
        return out

    views = [x, x[:, :, ::-1]] + [shifted(x, dy, dx) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    expected = np.mean([model.predict(v, verbose=0) for v in views], axis=0)
    np.testing.assert_allclose(tta.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
