"""crmkit: from legacy customer data to a CRM that departments use."""

__version__ = "0.1.0"
