"""The shared core: vocabulary, errors, profile schema, request validation and the classifier model.

Every service, tool and the SDK may import it; it imports none of them (an import-linter contract, `make lint`).
"""
