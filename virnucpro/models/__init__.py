"""Model architectures and their safe loaders: one module per model."""
