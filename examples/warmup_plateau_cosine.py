"""Warmup, a cosine schedule, plateau decay and a toolkit optimizer in one model.fit.

    python examples/warmup_plateau_cosine.py [--epochs 30]

- `kt.schedules.Warmup(kt.schedules.Cosine(...))`: linear warmup over the
  first 2 epochs (step by step), then cosine decay stated in epochs.
- `kt.optimizers.SGD` with a momentum schedule: β rises from 0.5 to 0.9.
- `kt.callbacks.PlateauDecay`: halves the rate on a validation plateau; it
  scales the schedule (Keras's ReduceLROnPlateau raises TypeError on one).
- `keras.callbacks.EarlyStopping` with patience, restoring the best weights.
"""

import argparse

import keras
import numpy as np

import kerastoolkit as kt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    x_train, y_train = kt.data.load("digits", "train", as_numpy=True)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)
    batch_size = 32
    steps_per_epoch = -(-int(len(x_train) * 0.9) // batch_size)  # validation_split=0.1

    warmup_epochs = 2
    schedule = kt.schedules.Warmup(
        kt.schedules.Cosine(0.05, total=args.epochs - warmup_epochs, steps_per_epoch=steps_per_epoch),
        warmup_steps=warmup_epochs * steps_per_epoch,  # the cosine's total excludes the warmup
    )
    momentum = keras.optimizers.schedules.PolynomialDecay(
        0.5, decay_steps=5 * steps_per_epoch, end_learning_rate=0.9  # β: 0.5 → 0.9 over 5 epochs
    )
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=kt.optimizers.SGD(learning_rate=schedule, momentum=momentum),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[
            kt.callbacks.PlateauDecay(patience=3, factor=0.5, verbose=1),
            keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True),
        ],
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    rates = np.round(history.history["learning_rate"], 5).tolist()
    print(f"learning rate after each epoch: {rates}")
    print(f"test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
