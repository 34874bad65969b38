"""Small utilities every stage shares, written once: atomic file writes (atomic.py)."""
