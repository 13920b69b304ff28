"""Training data and sandboxes: generated CRM worlds, messy legacy estates, masking, exercises."""
