"""Load tests with Locust against the reference CRM API: personas, profiles, SLO thresholds."""
