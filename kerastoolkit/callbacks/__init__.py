"""Callbacks for `model.fit`: warmup, plateau decay with schedules, snapshots, diagnostics."""
