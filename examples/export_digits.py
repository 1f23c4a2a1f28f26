"""Train a digits classifier in an ordinary Keras script and export it for serving.

    python examples/export_digits.py [--epochs 20] [--out savedmodels/digits_example]

The exported folder is the next version under --out (1, 2, ...), the layout
TensorFlow Serving reads; the script reloads it and checks that the served
probabilities equal the Keras model's.
"""

import argparse

import numpy as np

import keras
import kerastoolkit as kt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    parser.add_argument("--out", default="savedmodels/digits_example", help="export root")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    train = kt.data.load("digits", "train", batch_size=32)  # shuffled every epoch
    x_train, _ = kt.data.load("digits", "train", as_numpy=True)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)

    # Per-channel mean/variance from the training set, applied at test time inside the model.
    model = kt.models.default_classifier((8, 8, 1), 10, normalization_data=x_train)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)

    path = kt.export.saved_model(model, args.out)
    served = kt.export.load(path)
    difference = np.max(np.abs(served(x_test) - model.predict(x_test, verbose=0)))
    print(f"test accuracy {accuracy:.4f}; exported to {path}; max |served - keras| = {difference:.2e}")


if __name__ == "__main__":
    main()
