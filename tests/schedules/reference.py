"""Independent NumPy implementations of the schedules' formulas (float64).

Written from the lecture / papers, not from the package code.
"""

import math

import numpy as np


def epoch(step, steps_per_epoch):
    return step if steps_per_epoch is None else step // steps_per_epoch


def exponential(step, lr0, k, spe=None):
    return lr0 * np.exp(-k * epoch(step, spe))


def inverse_time(step, lr0, k, spe=None):
    return lr0 / (1.0 + k * epoch(step, spe))


def inverse_sqrt(step, lr0, spe=None):
    return lr0 / np.sqrt(max(epoch(step, spe), 1))


def linear(step, lr0, total, spe=None):
    t = epoch(step, spe)
    return lr0 * (1.0 - min(t, total) / total)


def cosine(step, lr0, total, spe=None):
    t = epoch(step, spe)
    return 0.5 * lr0 * (1.0 + np.cos(np.pi * min(t, total) / total))


def step_decay(step, lr0, factor, every, spe=None):
    return lr0 * factor ** math.floor(epoch(step, spe) / every)


def warmup(step, inner, warmup_steps, start=0.0, spe=None):
    """`inner` is a function of the optimizer step."""
    t = epoch(step, spe)
    if t < warmup_steps:
        return start + (inner(0) - start) * t / warmup_steps
    return inner(step - warmup_steps * (spe or 1))


def cyclic_cosine(step, lr0, total, cycles, spe=None):
    # Huang et al. 2017, Eq. (2): alpha0/2 * (cos(pi * mod(t-1, ceil(T/M)) / ceil(T/M)) + 1)
    # with 1-based t; here t is 0-based so mod(t, ...).
    t = epoch(step, spe)
    length = math.ceil(total / cycles)
    return lr0 / 2.0 * (np.cos(np.pi * (t % length) / length) + 1.0)


def one_cycle(step, max_lr, total, pct_start=0.3, div_factor=25.0,
              final_div_factor=1e4, anneal="cos", spe=None):
    t = epoch(step, spe)
    lo = max_lr / div_factor
    final = lo / final_div_factor
    up = pct_start * total

    def interp(a, b, p):
        if anneal == "cos":
            return b + (a - b) * (1.0 + np.cos(np.pi * p)) / 2.0
        return a + (b - a) * p

    if t <= up:
        return interp(lo, max_lr, t / up)
    return interp(max_lr, final, min((t - up) / (total - up), 1.0))
