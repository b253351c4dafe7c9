"""GET /v1/models and GET /v1/models/{version}: the published model versions, their held-out
metrics, and which one is the default."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from api.deps import Reader, ServicesDep
from api.modelinfo import EXAMPLE_VERSION, ModelBody, ModelList, model_body, model_list
from api.openapi import SERVER_ERROR, example, problem_response
from api.responses import guarded_by
from classifier.errors import UnknownModelVersionError

router = APIRouter()

LIST_MODELS: dict[int | str, dict[str, Any]] = {**guarded_by("read"), **SERVER_ERROR}
READ_MODEL: dict[int | str, dict[str, Any]] = {
    404: problem_response(
        "No model of this version is published.",
        example(404, "http-404", "Not Found", f"no model {EXAMPLE_VERSION}"),
    ),
    **LIST_MODELS,
}
READ_PICTURE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
    404: problem_response(
        "No model of this version is published, or it has no confusion matrix (published "
        "without held-out rows, or before pictures were drawn).",
        example(404, "http-404", "Not Found", f"no confusion matrix for {EXAMPLE_VERSION}"),
    ),
    **LIST_MODELS,
}


@router.get(
    "/v1/models",
    response_model=ModelList,
    summary="List models",
    description="Every published model version with its labels and held-out metrics, and "
    "which one submissions without `model_version` get. A version published, made the default "
    "or retired shows at the next request, without restart.",
    response_description="The models.",
    responses=LIST_MODELS,
)
async def list_models(svc: ServicesDep, _principal: Reader) -> ModelList:
    return model_list(svc.models, svc.default_model())


@router.get(
    "/v1/models/{version}",
    response_model=ModelBody,
    summary="Read a model",
    description="One published model version: its labels, held-out accuracy, per-label "
    "precision, recall and F1, confusion matrix, training data, and whether it is the default "
    "or retired (and for which replacement).",
    response_description="The model.",
    responses=READ_MODEL,
)
async def get_model(version: str, svc: ServicesDep, _principal: Reader) -> ModelBody:
    try:
        manifest = svc.models.manifest(version)
    except UnknownModelVersionError:
        raise HTTPException(404, f"no model {version}") from None
    return model_body(manifest, svc.models.serving.current(), svc.default_model())


@router.get(
    "/v1/models/{version}/confusion.png",
    response_class=Response,
    summary="Picture a model's confusion matrix",
    description="The held-out confusion matrix as a PNG heat map: rows are the true labels and "
    "columns the predicted ones, in the order of the model's `labels`; white is no rows and "
    "dark blue the largest count.",
    response_description="The picture.",
    responses=READ_PICTURE,
)
async def get_confusion_picture(version: str, svc: ServicesDep, _principal: Reader) -> Response:
    try:
        picture = svc.models.picture(version)
    except UnknownModelVersionError:
        picture = None
    if picture is None:
        raise HTTPException(404, f"no confusion matrix for {version}")
    return Response(picture, media_type="image/png")
