"""Inference: the generation engine used by chat (and later the web UI, API and eval)."""
