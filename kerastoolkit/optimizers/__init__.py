"""Optimizers Keras lacks, built on `keras.optimizers.Optimizer`."""
