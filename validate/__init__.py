"""Validation of CRM entities with pandera: business rules, quality profiles, gates, reports."""
