"""Export, quantization and validation tools (torch and openai-whisper are imported lazily)."""
