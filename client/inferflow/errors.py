"""The client's exceptions: every problem detail the API answers is raised as a `ProblemError`
of its status's family, carrying the problem's type, status, title and detail."""

from __future__ import annotations

from inferflow.types import Problem


class InferFlowError(Exception):
    """Anything the client raises on purpose."""


class ConnectionFailed(InferFlowError):
    """The API could not be reached (or the connection broke) and retries ran out."""


class ProblemError(InferFlowError):
    def __init__(self, problem: Problem, retry_after: float | None = None) -> None:
        super().__init__(f"{problem.status} {problem.name}: {problem.detail or problem.title}")
        self.problem = problem
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def status(self) -> int | None:
        return self.problem.status

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail


class Invalid(ProblemError):
    """400, 413, 415, 422: the request itself is wrong; sending it again will not help."""


class Unauthorized(ProblemError):
    """401: no key, or a key that is not live."""


class Forbidden(ProblemError):
    """403: the key lacks the route's scope."""


class NotFound(ProblemError):
    """404: no such job or batch for this tenant."""


class Conflict(ProblemError):
    """409: e.g. a cancel of a job that had already ended (`job-ended`)."""


class Gone(ProblemError):
    """410: e.g. a retired model version (`model-retired`, with its `replacement`)."""


class RateLimited(ProblemError):
    """429: over a rate limit or the queue cap, still so after the retries."""


class Unavailable(ProblemError):
    """502, 503, 504: a dependency was down, still so after the retries."""


class ServerError(ProblemError):
    """Another 5xx."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: Invalid,
    415: Invalid,
    422: Invalid,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_for(problem: Problem, retry_after: float | None = None) -> ProblemError:
    """The exception of `problem`'s status family."""
    status = problem.status or 0
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ProblemError)
    return kind(problem, retry_after)
