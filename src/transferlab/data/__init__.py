"""Data: datasets (registry, readers), splits (source/target, holdouts, nested size subsets)."""
