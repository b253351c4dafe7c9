"""Text classifiers: training (``classifier.train``), publishing a user's own scikit-learn
pipeline (``classifier.publish``), choosing the default and retiring versions
(``python -m classifier``), and a versioned model registry.

``classifier.registry`` imports no machine-learning library until a model is loaded.
"""
