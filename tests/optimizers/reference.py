"""Independent NumPy implementations of the papers' update rules (float64).

Each `*_step` takes the current state (dicts of NumPy arrays keyed by the
variable's name) and one step's gradients, and returns the new state. They
are written from the papers' equations, not from the package's code.
"""

import numpy as np


def polynomial_decay(step, initial, decay_steps, end, power):
    """Keras's PolynomialDecay formula (used as a momentum schedule)."""
    t = min(step, decay_steps)
    return (initial - end) * (1 - t / decay_steps) ** power + end


def sgd_momentum(weights, grads, steps, lr, beta, nesterov=False):
    """m ← β(t)·m − η·g; w ← w + m (Nesterov: w ← w + β(t)·m − η·g).

    `beta(t)` is called with t = 0, 1, ... Returns the weights after each step.
    """
    w = {k: np.array(v, np.float64) for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    history = []
    for t in range(steps):
        b = beta(t)
        for k in w:
            g = grads[t][k]
            m[k] = b * m[k] - lr * g
            w[k] = w[k] + (b * m[k] - lr * g if nesterov else m[k])
        history.append({k: v.copy() for k, v in w.items()})
    return history


class AdamRef:
    """Adam (Kingma & Ba) with bias correction; optional decoupled decay."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, epsilon
        self.wd = weight_decay
        self.m, self.v, self.k = {}, {}, 0

    def step(self, w, g):
        self.k += 1
        out = {}
        for name in w:
            m = self.m.get(name, np.zeros_like(w[name]))
            v = self.v.get(name, np.zeros_like(w[name]))
            x = w[name]
            if self.wd:
                x = x - self.lr * self.wd * x
            m = self.b1 * m + (1 - self.b1) * g[name]
            v = self.b2 * v + (1 - self.b2) * g[name] ** 2
            # Kingma & Ba's "efficient version": ε added to sqrt(v), with the
            # bias corrections folded into the step size.
            alpha = self.lr * np.sqrt(1 - self.b2 ** self.k) / (1 - self.b1 ** self.k)
            out[name] = x - alpha * m / (np.sqrt(v) + self.eps)
            self.m[name], self.v[name] = m, v
        return out


class SGDRef:
    """Keras-convention momentum SGD: m ← μm − ηg; w ← w + m."""

    def __init__(self, lr, momentum=0.0):
        self.lr, self.mu, self.m = lr, momentum, {}

    def step(self, w, g):
        out = {}
        for name in w:
            m = self.mu * self.m.get(name, np.zeros_like(w[name])) - self.lr * g[name]
            self.m[name] = m
            out[name] = w[name] + m
        return out


class SWATSRef:
    """Algorithm 1 of Keskar & Socher (2017), per variable."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-9,
                 switch_tolerance=1e-9, weight_decay=None, relative=False):
        self.relative = relative
        self.lr, self.b1, self.b2 = lr, beta_1, beta_2
        self.eps, self.tol, self.wd = epsilon, switch_tolerance, weight_decay
        self.k = 0
        self.state = {}

    def step(self, w, g):
        self.k += 1
        k, b1, b2 = self.k, self.b1, self.b2
        out = {}
        for name in w:
            s = self.state.setdefault(name, {
                "m": np.zeros_like(w[name]), "a": np.zeros_like(w[name]),
                "v": np.zeros_like(w[name]), "lam": 0.0, "phase": "adam",
                "Lambda": None, "switch_step": None,
            })
            x = w[name]
            if self.wd:
                x = x - self.lr * self.wd * x
            p = g[name]
            if s["phase"] == "sgd":
                s["v"] = b1 * s["v"] + p
                out[name] = x - (1 - b1) * s["Lambda"] * s["v"]
                continue
            s["m"] = b1 * s["m"] + (1 - b1) * p
            s["a"] = b2 * s["a"] + (1 - b2) * p ** 2
            step = -self.lr * (np.sqrt(1 - b2 ** k) / (1 - b1 ** k)) * s["m"] / (
                np.sqrt(s["a"]) + self.eps)
            out[name] = x + step
            ptg = float(np.sum(step * p))
            if ptg != 0:
                gamma = float(np.sum(step * step)) / -ptg
                s["lam"] = b2 * s["lam"] + (1 - b2) * gamma
                # Relative test: |λ̂ − γ| / |γ| < tol (the toolkit's default).
                scale = abs(gamma) if self.relative else 1.0
                diff = abs(s["lam"] / (1 - b2 ** k) - gamma) / scale
                s.setdefault("diffs", []).append(diff)
                if k > 1 and diff < self.tol:
                    s["phase"] = "sgd"
                    s["v"] = np.zeros_like(x)
                    s["Lambda"] = s["lam"] / (1 - b2 ** k)
                    s["switch_step"] = k
        return out


class LookaheadRef:
    """Zhang et al. (2019), Algorithm 1, around any `*Ref` inner optimizer."""

    def __init__(self, inner, weights, k, alpha):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.slow = {n: np.array(v, np.float64) for n, v in weights.items()}
        self.t = 0

    def step(self, w, g):
        w = self.inner.step(w, g)
        self.t += 1
        if self.t % self.k == 0:
            for n in w:
                self.slow[n] = self.slow[n] + self.alpha * (w[n] - self.slow[n])
                w[n] = self.slow[n].copy()
        return w


class LARSRef:
    """You et al. (2017), Algorithm 1; `adapted[name]` False = plain momentum."""

    def __init__(self, lr, momentum, weight_decay, trust, adapted, epsilon=0.0):
        self.lr, self.mu, self.beta, self.eta = lr, momentum, weight_decay, trust
        self.adapted, self.eps, self.v = adapted, epsilon, {}

    def step(self, w, g):
        out = {}
        for n in w:
            v = self.v.get(n, np.zeros_like(w[n]))
            if self.adapted[n]:
                wn, gn = np.linalg.norm(w[n]), np.linalg.norm(g[n])
                local = (self.eta * wn / (gn + self.beta * wn + self.eps)
                         if wn > 0 and gn > 0 else 1.0)
                v = self.mu * v + self.lr * local * (g[n] + self.beta * w[n])
            else:
                v = self.mu * v + self.lr * g[n]
            self.v[n] = v
            out[n] = w[n] - v
        return out


def linear_mse_grads(w, x, y):
    """Gradients of Keras's MSE (mean over batch and outputs) of x@W + b."""
    pred = x @ w["kernel"] + w["bias"]
    diff = 2.0 * (pred - y) / pred.size
    return {"kernel": x.T @ diff, "bias": diff.sum(axis=0)}


def simulate_fit(opt, w, x, y, batch_size, epochs):
    """`model.fit(x, y, batch_size, epochs, shuffle=False)` of a linear model."""
    w = {k: np.array(v, np.float64) for k, v in w.items()}
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            w = opt.step(w, linear_mse_grads(w, xb, yb))
    return w


class ScheduledSGDRef:
    """m ← β(t)·m − η·g; w ← w + m with t = 0, 1, ... (the lecture's SGD)."""

    def __init__(self, lr, beta, nesterov=False):
        self.lr, self.beta, self.nesterov = lr, beta, nesterov
        self.m, self.t = {}, 0

    def step(self, w, g):
        b = self.beta(self.t)
        self.t += 1
        out = {}
        for n in w:
            m = b * self.m.get(n, np.zeros_like(w[n])) - self.lr * g[n]
            self.m[n] = m
            out[n] = w[n] + (b * m - self.lr * g[n] if self.nesterov else m)
        return out
