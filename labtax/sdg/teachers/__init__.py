"""Teachers: the models that write synthetic data. Every backend implements `Teacher` (base.py)."""
