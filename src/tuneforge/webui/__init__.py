"""The web UI (`tuneforge webui`): a Gradio app over the same config, CLI and engines."""
