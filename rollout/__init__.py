"""Staged rollout: a pilot department first, then waves, each gated on evidence."""
