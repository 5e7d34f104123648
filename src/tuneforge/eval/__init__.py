"""Evaluation helpers: identity hit rate and general-knowledge retention."""
