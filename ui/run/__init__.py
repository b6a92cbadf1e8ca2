"""The Run page: the form, the live run, the cost estimate, strategies side by side."""
