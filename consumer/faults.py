"""Fault injection for tests and drills, off unless FAULT_INJECTION=true.

Directives inside the job text trigger faults, so a test drives the real retry, failure and
timeout machinery through the public API:
- `[[transient:N]]` the first N attempts fail with a transient error;
- `[[permanent]]` every attempt fails with a permanent error;
- `[[sleep_ms:N]]` each attempt sleeps N ms before predicting (to provoke the timeout).
"""

from __future__ import annotations

import re
import time

from consumer.errors import InferenceError, TransientInferenceError

_TRANSIENT = re.compile(r"\[\[transient:(\d{1,3})\]\]")
_SLEEP = re.compile(r"\[\[sleep_ms:(\d{1,6})\]\]")
_PERMANENT = "[[permanent]]"


def has_directives(text: str) -> bool:
    """Whether `text` asks for a fault; such a job runs alone, never in a batch."""
    if "[[" not in text:
        return False
    return _PERMANENT in text or bool(_TRANSIENT.search(text) or _SLEEP.search(text))


def inject(text: str, attempt: int) -> None:
    """Raise or delay as the directives in `text` ask, for the given 1-based attempt."""
    if sleep := _SLEEP.search(text):
        time.sleep(int(sleep.group(1)) / 1000)
    if _PERMANENT in text:
        raise InferenceError("injected permanent fault")
    if (transient := _TRANSIENT.search(text)) and attempt <= int(transient.group(1)):
        raise TransientInferenceError(f"injected transient fault on attempt {attempt}")
