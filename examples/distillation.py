"""Distil a digits teacher into a small student: live teacher, then stored soft targets.

    python examples/distillation.py [--epochs 30] [--temperature 2] [--alpha 0.5]

Hinton et al.'s three steps: train a teacher; store its softened outputs
(`kt.models.soft_targets`, written to disk with NumPy); train the student on
them without the teacher in memory. The student trained alone, with the same
budget, is the baseline. The last line prints the three test accuracies. On
300 digits the student alone is already close to the teacher, so this shows
the workflow; `benchmarks/distillation.py` measures the gain.
"""

import argparse
import os
import tempfile

import numpy as np

import keras
import kerastoolkit as kt


def mlp(hidden, name):
    """An MLP with logits out (the Distiller takes `teacher_outputs="logits"`)."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    parser.add_argument("--temperature", type=float, default=2.0, help="softening temperature T (default: 2)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the hard labels (default: 0.5)")
    args = parser.parse_args()
    hard_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x_train, y_train = kt.data.load("digits", "train", as_numpy=True)
    x_train, y_train = x_train[:300], y_train[:300]  # little data: where soft targets help
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)

    keras.utils.set_random_seed(0)
    teacher = mlp([256, 256], "teacher")
    teacher.compile(keras.optimizers.Adam(3e-3), hard_loss)
    teacher.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)

    keras.utils.set_random_seed(1)
    alone = mlp([16], "student_alone")
    alone.compile(keras.optimizers.Adam(3e-3), hard_loss)
    alone.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)

    teacher_accuracy = accuracy(teacher, x_test, y_test)
    # Step 2: store the teacher's soft targets, then train without the teacher.
    path = os.path.join(tempfile.mkdtemp(), "soft_targets.npy")
    np.save(path, kt.models.soft_targets(teacher, x_train, temperature=args.temperature))
    del teacher
    keras.utils.set_random_seed(1)
    student = mlp([16], "student")
    distiller = kt.models.Distiller(None, student, temperature=args.temperature, alpha=args.alpha)
    distiller.compile(keras.optimizers.Adam(3e-3), hard_loss, metrics=["accuracy"])
    distiller.fit(x_train, (y_train, np.load(path)), epochs=args.epochs, batch_size=32, verbose=0)

    print(
        f"test accuracy: teacher {teacher_accuracy:.4f}; student alone {accuracy(alone, x_test, y_test):.4f}; "
        f"distilled from stored soft targets {accuracy(student, x_test, y_test):.4f}"
    )


if __name__ == "__main__":
    main()
