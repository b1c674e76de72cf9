"""Settings of the classifier service (`QUANTMESH_CLASSIFIER_*` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from services.common.settings import ServerSettings


class ClassifierSettings(ServerSettings):
    """Where the model artifact is and how large a text may be, plus the shared server settings.

    Example: `QUANTMESH_CLASSIFIER_PORT=50051 QUANTMESH_CLASSIFIER_ARTIFACT_DIR=/models/clf python -m services.classifier`.
    """

    model_config = SettingsConfigDict(env_prefix="QUANTMESH_CLASSIFIER_", frozen=True, extra="forbid")

    artifact_dir: Path = Field(
        DEFAULT_ARTIFACT_DIR,
        description="Directory with manifest.json, model.npz and reference_tokenizer.json (the shipped one by default).",
    )
    max_text_bytes: int = Field(
        64 * 1024, ge=1, description="Largest `text` accepted, in UTF-8 bytes; larger is INVALID_ARGUMENT."
    )
