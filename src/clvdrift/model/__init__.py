"""Model: fit, evaluate, artifacts on disk, registry in the store."""
