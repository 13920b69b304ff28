"""The pipeline of a migration run: prepare, check, delta, write, bulk, reconcile; run.py orchestrates."""
