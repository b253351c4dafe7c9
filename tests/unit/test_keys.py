"""API keys' format, scopes, the Bearer header, principals and tenant metric labels."""

from __future__ import annotations

import pytest

from api.auth import TRUSTED, Principal, bearer_token
from api.errors import UnauthenticatedError
from api.keys import KEY_CHARS, PREFIX, Scope, hint, key_hash, new_key, parse_scopes, well_formed
from api.metrics import OTHER_TENANTS, TenantLabels
from domain.tenants import DEFAULT_TENANT, is_tenant


def test_a_key_has_the_prefix_its_length_and_a_valid_checksum():
    key = new_key()
    assert key.startswith(PREFIX) and len(key) == KEY_CHARS
    assert key[len(PREFIX) :].isalnum()
    assert well_formed(key)


def test_keys_are_all_different():
    assert len({new_key() for _ in range(1000)}) == 1000


@pytest.mark.parametrize("position", [4, 20, 43, 44, 49])
def test_a_changed_character_breaks_the_checksum(position):
    key = new_key()
    swapped = "A" if key[position] != "A" else "B"
    assert not well_formed(key[:position] + swapped + key[position + 1 :])


@pytest.mark.parametrize(
    "candidate",
    ["", "ifk_", "sk_live_" + "a" * 42, new_key()[:-1], new_key() + "x", "IFK_" + new_key()[4:]],
)
def test_look_alikes_are_not_keys(candidate):
    assert not well_formed(candidate)


def test_a_non_alphanumeric_character_is_not_a_key():
    key = new_key()
    assert not well_formed(key[:10] + "-" + key[11:])


def test_the_hash_and_hint_do_not_give_the_key_away():
    key = new_key()
    digest = key_hash(key)
    assert len(digest) == 64 and key[len(PREFIX) :] not in digest
    shown = hint(key)
    assert shown.startswith(key[:8]) and shown.endswith(key[-4:])
    assert len(shown) < 16


def test_scopes_by_name():
    assert parse_scopes(["submit", " read"]) == {Scope.SUBMIT, Scope.READ}
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        parse_scopes(["write"])
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes([])


def test_admin_allows_everything_and_sees_every_tenant():
    admin = Principal("acme", frozenset({Scope.ADMIN}))
    assert all(admin.allows(scope) for scope in Scope)
    assert admin.sees("acme") and admin.sees("globex")
    assert TRUSTED.admin and TRUSTED.tenant == DEFAULT_TENANT


def test_a_tenant_key_sees_its_tenant_only_and_has_its_scopes_only():
    reader = Principal("acme", frozenset({Scope.READ}))
    assert reader.allows(Scope.READ)
    assert not reader.allows(Scope.SUBMIT) and not reader.allows(Scope.ADMIN)
    assert reader.sees("acme") and not reader.sees("globex")


def test_the_bearer_header():
    assert bearer_token(["Bearer abc"]) == "abc"
    assert bearer_token(["bearer   abc  "]) == "abc"
    with pytest.raises(UnauthenticatedError) as missing:
        bearer_token([])
    assert missing.value.reason is None  # RFC 6750: no error code without credentials
    for bad in (["Basic abc"], ["Bearer"], ["Bearer "], ["abc"], ["Bearer a", "Bearer b"]):
        with pytest.raises(UnauthenticatedError) as refused:
            bearer_token(bad)
        assert refused.value.reason == "invalid_request"


def test_tenant_names():
    assert is_tenant("acme") and is_tenant("team-7_b") and is_tenant(DEFAULT_TENANT)
    for bad in ("", "Acme", "-acme", "a b", "a/b", "a{b}", "x" * 64, "é"):
        assert not is_tenant(bad)


def test_tenant_labels_are_bounded():
    labels = TenantLabels(2)
    assert labels("a") == "a" and labels("b") == "b"
    assert labels("c") == OTHER_TENANTS
    assert labels("a") == "a"  # named ones keep their label
    assert TenantLabels(0)("a") == OTHER_TENANTS
