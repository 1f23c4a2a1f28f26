"""`tf.distribute` helpers: strategy selection, scaling rules, multi-worker support."""
