"""Test-time augmentation of a digits classifier, exported as one SavedModel.

    python examples/tta.py [--epochs 10] [--out savedmodels/digits_tta_example]

The classifier is trained on 6×6 crops (random crops as augmentation); at
test time `kt.models.TTAPredictor` averages its predictions over the five
6×6 crops of each 8×8 test image in one batched forward pass, compared with
the centre crop alone. The predictor is exported with `kt.export.saved_model`
(one input, the averaged probabilities out) and the served output checked.
"""

import argparse

import numpy as np

import keras
import kerastoolkit as kt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    parser.add_argument("--out", default="savedmodels/digits_tta_example", help="export root")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x_train, y_train = kt.data.load("digits", "train", as_numpy=True)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.RandomCrop(6, 6)(inputs)  # training: random crops; inference: centre crop
    crop_model = kt.models.default_classifier((6, 6, 1), 10)
    trainer = keras.Model(inputs, crop_model(x))
    trainer.compile("adam", "sparse_categorical_crossentropy")
    trainer.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)

    centre = kt.models.TTAPredictor(crop_model, views=["crops:1"], input_shape=(8, 8, 1))
    five = kt.models.TTAPredictor(crop_model, views=["crops:5"], input_shape=(8, 8, 1))
    accuracy = {
        name: float(np.mean(np.argmax(m.predict(x_test, verbose=0), axis=1) == y_test))
        for name, m in (("centre crop", centre), ("5-crop TTA", five))
    }
    path = kt.export.saved_model(five, args.out)
    served = kt.export.load(path)
    difference = np.max(np.abs(served(x_test) - five.predict(x_test, verbose=0)))
    print(
        f"test accuracy: centre crop {accuracy['centre crop']:.4f}; 5-crop TTA "
        f"{accuracy['5-crop TTA']:.4f}; exported to {path}; max |served - keras| = {difference:.2e}"
    )


if __name__ == "__main__":
    main()
