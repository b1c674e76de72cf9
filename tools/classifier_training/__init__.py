"""Training and evaluation of the query classifier (`python -m tools.classifier_training.train`)."""
