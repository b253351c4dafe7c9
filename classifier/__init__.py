"""Spam/ham text classifier: training (``classifier.train``) and a versioned model registry.

``classifier.registry`` imports no machine-learning library until a model is loaded.
"""
