"""The serving state: the default and retired versions, in a file every process reads."""

from __future__ import annotations

import pytest

from classifier.errors import ModelRetiredError, ServingChangeError, UnknownModelVersionError
from classifier.serving import STATE_FILE, ServingState, ServingStore

KNOWN = {"a", "b", "c"}


def exists(version: str) -> bool:
    return version in KNOWN


def test_no_file_means_the_configured_default_and_nothing_retired(tmp_path) -> None:
    state = ServingStore(tmp_path).current()
    assert state == ServingState()
    assert state.default_version("a") == "a"
    state.check_submission("a")


def test_a_change_is_seen_by_another_store_at_once(tmp_path) -> None:
    reader, writer = ServingStore(tmp_path), ServingStore(tmp_path)
    assert reader.current().default is None
    writer.set_default("b", exists)
    assert reader.current().default_version("a") == "b"
    writer.set_default("c", exists)
    assert reader.current().default_version("a") == "c"


def test_retiring_refuses_submissions_naming_the_replacement(tmp_path) -> None:
    store = ServingStore(tmp_path)
    store.retire("a", "b", exists)
    with pytest.raises(ModelRetiredError) as caught:
        store.current().check_submission("a")
    assert caught.value.replacement == "b"
    store.current().check_submission("b")


def test_retiring_the_default_makes_the_replacement_the_default(tmp_path) -> None:
    store = ServingStore(tmp_path)
    store.set_default("a", exists)
    assert store.retire("a", "b", exists).default == "b"


def test_a_retired_configured_default_gives_way_to_the_end_of_its_replacements(tmp_path) -> None:
    store = ServingStore(tmp_path)
    store.retire("a", "b", exists)
    store.retire("b", "c", exists)
    assert store.current().default_version("a") == "c"
    with pytest.raises(ModelRetiredError) as caught:
        store.current().check_submission("a")
    assert caught.value.replacement == "c"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda s: s.set_default("z", exists), UnknownModelVersionError),
        (lambda s: s.retire("a", "z", exists), UnknownModelVersionError),
        (lambda s: s.retire("a", "a", exists), ServingChangeError),
        (lambda s: s.retire("c", "b", exists), ServingChangeError),  # b is retired
        (lambda s: s.set_default("b", exists), ServingChangeError),
    ],
)
def test_changes_that_leave_no_servable_version_are_refused(tmp_path, change, error) -> None:
    store = ServingStore(tmp_path)
    store.retire("b", "a", exists)
    before = (tmp_path / STATE_FILE).read_bytes()
    with pytest.raises(error):
        change(store)
    assert (tmp_path / STATE_FILE).read_bytes() == before


def test_restore_takes_submissions_again(tmp_path) -> None:
    store = ServingStore(tmp_path)
    store.retire("a", "b", exists)
    store.restore("a")
    store.current().check_submission("a")


def test_the_state_file_is_not_listed_as_a_model(tmp_path) -> None:
    from classifier.registry import ModelRegistry

    ServingStore(tmp_path).set_default("a", exists)
    assert ModelRegistry(tmp_path).versions() == ()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"retired": 3}'])
def test_a_broken_file_keeps_the_previous_state(tmp_path, text) -> None:
    store = ServingStore(tmp_path)
    store.set_default("b", exists)
    assert store.current().default == "b"
    (tmp_path / STATE_FILE).write_text(text)
    assert store.current().default == "b"
