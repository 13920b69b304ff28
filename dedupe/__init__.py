"""Deduplication and merge: matching rules, blocking, comparison, clustering, golden records."""
