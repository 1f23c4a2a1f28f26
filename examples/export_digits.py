"""Train a digits classifier in an ordinary Keras script and export it for serving.

    python examples/export_digits.py [--epochs 20] [--out savedmodels/digits_example]

The exported folder is the next version under --out (1, 2, ...), the layout
TensorFlow Serving reads. The served model takes the raw `load_digits`
pixels (uint8, 0..16, shape (batch, 8, 8, 1)) as input `inputs`: the
scaling to [0, 1] and the training-set statistics are inside the graph. Its
`serving_default` signature returns `probabilities`, `top_k_indices`,
`top_k_scores` and `top_k_class_names`. The script reloads the export and
checks that the served probabilities equal the Keras model's.
"""

import argparse

import keras
import numpy as np

import kerastoolkit as kt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    parser.add_argument("--out", default="savedmodels/digits_example", help="export root")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    train = kt.data.load("digits", "train", batch_size=32)  # shuffled every epoch, pixels / 16
    x_train, _ = kt.data.load("digits", "train", as_numpy=True)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)

    # Per-channel mean/variance from the training set, applied at test time inside the model.
    model = kt.models.default_classifier((8, 8, 1), 10, normalization_data=x_train)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)

    raw_test = np.round(x_test * 16).astype("uint8")  # what a client has: load_digits pixels
    path = kt.export.saved_model(
        model,
        args.out,
        preprocessing=keras.layers.Rescaling(1 / 16),  # raw pixels in, scaled inside the graph
        class_names=[str(d) for d in range(10)],
        metadata={"dataset": "digits", "metrics": {"test_accuracy": round(float(accuracy), 4)}},
        sample=raw_test[:8],  # checked after reload, and the warmup requests
    )
    served = kt.export.load(path)  # keeps the loaded object alive while it runs
    outputs = served.predict(raw_test)
    served_accuracy = float(np.mean(outputs["top_k_indices"][:, 0] == y_test))
    difference = np.max(np.abs(outputs["probabilities"] - model.predict(x_test, verbose=0)))
    print(f"served: input {served.input_spec}, outputs {sorted(outputs)}; first answer {outputs['top_k_class_names'][0, 0].decode()}")
    print(
        f"test accuracy {accuracy:.4f}; served on raw pixels {served_accuracy:.4f}; exported to {path}; "
        f"max |served - keras| = {difference:.2e}"
    )


if __name__ == "__main__":
    main()
