"""An endpoint's URL is https to a public address unless local receivers are allowed; before
each attempt its host is resolved and checked again, and the attempt goes to that address."""

from __future__ import annotations

import pytest

from billfold.platform.errors import ValidationFailed
from billfold.webhooks.urls import AddressRefused, check_url, route, without_query


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/in", "must use https"),
        ("ftp://hooks.example.com/in", "must be an https URL"),
        ("https://127.0.0.1/in", "is 127.0.0.1, not a public address"),
        ("https://127.1/in", "is 127.0.0.1, not a public address"),
        ("https://2130706433/in", "is 127.0.0.1, not a public address"),
        ("https://10.1.2.3:8443/in", "is 10.1.2.3, not a public address"),
        ("https://169.254.169.254/latest/meta-data", "is 169.254.169.254, not a public"),
        ("https://100.64.0.1/", "is 100.64.0.1, not a public address"),
        ("https://[::1]/in", "is ::1, not a public address"),
        ("https://[::ffff:192.168.0.1]/in", "not a public address"),
        ("https://[fd00::1]/in", "is fd00::1, not a public address"),
        ("https://0.0.0.0/in", "is 0.0.0.0, not a public address"),
        ("https://localhost/in", "names this machine or a private network"),
        ("https://db.internal/in", "names this machine or a private network"),
        ("https://intranet/in", "must name a host by its full domain name"),
        ("https://user:pw@hooks.example.com/in", "must not hold a user name or password"),
        ("https://hooks.example.com/in#frag", "must not have a fragment"),
        ("https://hooks.example.com:99999/in", "is not a URL"),
        ("https:///in", "has no host"),
        ("https://hooks.example.com/a b", "must be ASCII without spaces"),
        ("https://hooks.exämple.com/in", "must be ASCII without spaces"),
        ("https://hooks.example.com/" + "a" * 2048, "must be 1 to 2048 characters"),
        ("", "must be 1 to 2048 characters"),
    ],
)
def test_a_url_that_could_reach_inside_is_refused(url: str, why: str) -> None:
    """Each is a 422 on `url` saying why (server-side request forgery, or not a URL at all)."""
    with pytest.raises(ValidationFailed) as refused:
        check_url(url, allow_local=False)
    assert why in refused.value.detail
    assert refused.value.fields["field"] == "url"


def test_public_https_urls_are_taken_and_local_ones_when_allowed() -> None:
    assert check_url(" https://hooks.example.com:8443/in?x=1 ", False) == (
        "https://hooks.example.com:8443/in?x=1"
    )
    assert check_url("https://93.184.216.34/in", False) == "https://93.184.216.34/in"
    assert check_url("http://127.0.0.1:9000/in", True) == "http://127.0.0.1:9000/in"
    with pytest.raises(ValidationFailed):
        check_url("https://user@127.0.0.1/in", True)


async def test_an_attempt_goes_to_the_checked_address_with_the_name_kept() -> None:
    """The request connects to the address, presenting the name as Host and TLS server name."""
    way = await route("https://93.184.216.34:8443/in?x=1", allow_local=False)
    assert way.url == "https://93.184.216.34:8443/in?x=1"
    assert way.headers == {"host": "93.184.216.34:8443"}
    assert way.extensions == {"sni_hostname": "93.184.216.34"}
    v6 = await route("https://[2606:4700::1111]/in", allow_local=False)
    assert v6.url == "https://[2606:4700::1111]/in"


@pytest.mark.parametrize(
    "url", ["https://localhost/in", "https://127.1/in", "https://[::ffff:10.0.0.1]/"]
)
async def test_an_attempt_to_a_name_or_address_inside_is_refused(url: str) -> None:
    """At delivery, a name that resolves to a private address (here, localhost) is refused,
    as an address inside is, however it is written."""
    with pytest.raises(AddressRefused, match="not a public address"):
        await route(url, allow_local=False)


async def test_local_receivers_when_allowed_are_reached_as_written() -> None:
    way = await route("http://localhost:9000/in", allow_local=True)
    assert (way.url, way.headers, way.extensions) == ("http://localhost:9000/in", {}, {})


def test_events_show_the_url_without_its_query() -> None:
    assert without_query("https://h.example.com/in?token=s3cret") == "https://h.example.com/in"
