"""Unlearning methods and their plugin registry (built in the unlearning-core issue)."""
