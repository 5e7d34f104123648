"""Data: catalog, readers, format converters, chat templates, encoding with supervised masks, batching."""
