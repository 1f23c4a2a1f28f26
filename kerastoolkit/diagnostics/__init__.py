"""Learning-curve diagnostics: what the curves mean, in words, and what to try next."""

from kerastoolkit.diagnostics.plots import plot_history
