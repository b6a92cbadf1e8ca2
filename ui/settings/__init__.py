"""The Settings page: providers, local servers and GGUF files, Test connection."""
