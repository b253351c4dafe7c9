"""Path and query parameters that several routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.longpoll import WAIT_LIMIT_S
from api.schemas import EXAMPLE_JOB_ID

JOB_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

JobId = Annotated[
    str,
    Path(
        description="A job id as the 202 returned it: a UUID in canonical lowercase form. "
        "Any other string is 404 without a database read.",
        examples=[EXAMPLE_JOB_ID],
        json_schema_extra={"pattern": JOB_ID_PATTERN},
    ),
]

BatchId = Annotated[
    str,
    Path(
        description="A batch id as POST /v1/batches or POST /v1/inference/batch returned it: a "
        "UUID in canonical lowercase form. Any other string is 404 without a database read.",
        json_schema_extra={"pattern": JOB_ID_PATTERN},
    ),
]

Wait = Annotated[
    float,
    Query(
        ge=0,
        le=WAIT_LIMIT_S,
        description=f"Seconds (0 to {WAIT_LIMIT_S}) to hold the request until the job is "
        "succeeded or failed. The answer comes as soon as it is, or when the time runs out with "
        "the job as it then is. The server may wait less (MAX_WAIT_S); 0, the default, answers "
        "at once.",
    ),
]
