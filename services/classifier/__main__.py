"""`python -m services.classifier`: runs the classifier service (settings from `QUANTMESH_CLASSIFIER_*`)."""

import asyncio

from services.classifier.server import serve
from services.classifier.settings import ClassifierSettings

if __name__ == "__main__":
    asyncio.run(serve(ClassifierSettings()))
