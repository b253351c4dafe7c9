"""Errors of the model registry, under the one root (domain.errors)."""

from __future__ import annotations

from domain.errors import PermanentError


class UnknownModelVersionError(PermanentError):
    """A model version that is not in the registry."""

    def __init__(self, version: str, known: tuple[str, ...] = ()) -> None:
        self.version = version
        self.known = known
        listing = ", ".join(known) if known else "none"
        super().__init__(f"unknown model version {version!r} (available: {listing})")


class ModelIntegrityError(PermanentError):
    """A model file that is missing, altered, or holds types we refuse to load."""

    def __init__(self, version: str, reason: str) -> None:
        self.version = version
        self.reason = reason
        super().__init__(f"model {version!r} failed integrity check: {reason}")


class ModelRetiredError(PermanentError):
    """A model version retired for new submissions; `replacement` is the version to use."""

    def __init__(self, version: str, replacement: str) -> None:
        self.version = version
        self.replacement = replacement
        super().__init__(f"model version {version!r} is retired: use {replacement!r}")


class ServingChangeError(PermanentError):
    """A default or retirement that would leave submissions without a servable version."""
