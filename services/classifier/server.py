"""Classifier server: `create_server` (load the artifact, build, start) and `serve` (until SIGTERM).

A missing or corrupt artifact does not stop the process: the server runs with health NOT_SERVING (for "" and
`quantmesh.classifier.v1.ClassifierService`), logs `classifier_artifact_invalid` with the reason, and answers
every RPC with UNAVAILABLE carrying that reason, so that orchestrators and callers both see why it is not ready.
"""

from __future__ import annotations

import time

import structlog

from core.classifier_model.artifact import ArtifactError
from core.classifier_model.model import ClassifierModel
from services.classifier.servicer import SERVICE_NAME, ClassifierServicer, register
from services.classifier.settings import ClassifierSettings
from services.common.logging import configure_logging
from services.common.server import GrpcServer, build_server, run_until_signal
from services.common.telemetry import process_telemetry

log = structlog.get_logger(__name__)

_WARM_UP_TEXT = "Warm-up: what is 12 times 7?"


def load_model(settings: ClassifierSettings) -> tuple[ClassifierModel | None, str]:
    """The loaded model and "" , or None and why it could not be loaded."""
    started = time.perf_counter()
    try:
        model = ClassifierModel.load(settings.artifact_dir)
    except ArtifactError as exc:
        log.error("classifier_artifact_invalid", artifact_dir=str(settings.artifact_dir), reason=str(exc))
        return None, str(exc)
    model.classify(_WARM_UP_TEXT)
    log.info(
        "classifier_model_loaded",
        artifact_dir=str(settings.artifact_dir),
        model_version=model.model_version,
        load_s=round(time.perf_counter() - started, 3),
    )
    return model, ""


async def create_server(settings: ClassifierSettings) -> tuple[GrpcServer, int]:
    """Loads the model, builds and starts the server; health is SERVING only if the model loaded.

    Returns:
        The started server and its bound port.

    Raises:
        RuntimeError: the address could not be bound.
    """
    model, reason = load_model(settings)
    servicer = ClassifierServicer(model, settings.max_text_bytes, unavailable_reason=reason)
    grpc_server = await build_server(settings, [SERVICE_NAME], lambda server: register(servicer, server))
    await grpc_server.start()
    await grpc_server.set_serving(model is not None)
    log.info("classifier_started", host=settings.host, port=grpc_server.port, serving=model is not None)
    return grpc_server, grpc_server.port


async def serve(settings: ClassifierSettings) -> None:
    """Runs the classifier until SIGTERM or SIGINT, then drains."""
    configure_logging(settings.log_level, json=settings.log_json)
    with process_telemetry(settings, "quantmesh-classifier"):
        grpc_server, _ = await create_server(settings)
        await run_until_signal(grpc_server, settings)
