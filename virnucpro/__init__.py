"""VirNucPro: identify viral DNA windows with DNABERT-S + ESM-2 embeddings and the published MLP classifier."""

__version__ = "0.1.0"
