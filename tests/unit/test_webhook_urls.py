"""Which webhook URLs are called: their form, and the addresses their host resolves to."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from runtime import webhookurls
from runtime.errors import RefusedWebhookError


def check(url: str, allow_private: bool = False) -> webhookurls.Target:
    return asyncio.run(webhookurls.check(url, allow_private))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "javascript:alert(1)",
        "http:///no-host",
        "https://user:secret@example.com/hook",
        "https://example.com:0/hook",
        "https://exa mple.com/hook",
        "https://example.com/" + "a" * 2048,
        "https://bücher.example/hook",
        "http://example.com:99999/",
    ],
)
def test_a_url_of_another_form_is_refused(url):
    with pytest.raises(RefusedWebhookError):
        webhookurls.parse(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.1.1/hook",
        "http://[fe80::1]/hook",
        "http://[fd12::1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_a_host_inside_a_private_network_is_refused(url):
    with pytest.raises(RefusedWebhookError, match="resolves to"):
        check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_a_metadata_endpoint_is_refused_even_where_private_networks_are_allowed(url):
    with pytest.raises(RefusedWebhookError, match="metadata"):
        check(url, allow_private=True)


def test_private_networks_pass_when_allowed():
    target = check("http://127.0.0.1:8080/hook", allow_private=True)
    assert (target.host, target.port, target.scheme) == ("127.0.0.1", 8080, "http")
    assert target.addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert check("http://localhost/hook", allow_private=True).port == 80


def test_a_public_address_passes_with_its_default_port():
    target = check("https://93.184.215.14/hook")
    assert target.port == 443 and target.addresses == (ipaddress.ip_address("93.184.215.14"),)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(RefusedWebhookError, match="does not resolve"):
        check("https://no-such-host.invalid/hook")
