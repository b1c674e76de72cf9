"""The trained query classifier at serving time: reference tokenizer, features, artifact and inference.

Loaded by the classifier service and by the router's embedded mode; written by `tools.classifier_training`.
"""
