"""labtax: a git-native toolkit for LAB-style taxonomies (validate, diff, generate, train, eval)."""

__version__ = "0.1.0"
