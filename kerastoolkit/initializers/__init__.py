"""Initializers Keras lacks (data-driven LSUV)."""
