"""Where the repository keeps what the tools read and write (a source checkout; nothing outside it is read)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
"""The evaluation and training data, copied into the repository with licenses and provenance (`data/README.md`)."""
MODEL_CACHE_DIR = REPO_ROOT / ".cache" / "models"
"""Models built or converted on this machine (git-ignored)."""
WHEEL_CACHE_DIR = REPO_ROOT / ".cache" / "wheels"
"""Wheels downloaded by `quantmesh models fetch` (git-ignored; reused by later fetches)."""
