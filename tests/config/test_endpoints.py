"""`base_urls`, an agent's endpoint pool: what `validate` accepts and refuses, one line each; and
the form in which a server's URL is written down (without credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intermodel.config import parse_pairing
from intermodel.errors import ConfigError
from intermodel.lineage.trust import Seat
from intermodel.security.secrets import public_url
from tests.hostile.support import cli

BASE = """
name = "pool"
[dialogue]
opener = "Hi."
[agents.ada]
provider = "openai"
model = "m"
{ada}
[agents.bo]
provider = "scripted"
{bo}
[agents.bo.script]
replies = ["ok"]
"""


def pairing_file(tmp_path: Path, ada: str, bo: str = "") -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(BASE.format(ada=ada, bo=bo))
    return path


def test_a_pool_validates_and_is_built(tmp_path: Path) -> None:
    path = pairing_file(tmp_path, 'base_urls = ["http://gpu1:8000/v1", "https://gpu2/v1"]\n'
                                  "endpoint_cool_down = 5")
    result = cli("validate", path)
    assert result.code == 0, result.err
    ada = parse_pairing(path.read_text(), source=str(path)).agent("ada")
    assert ada.base_urls == ("http://gpu1:8000/v1", "https://gpu2/v1")
    assert (ada.base_url, ada.endpoint_cool_down, ada.key_required) == (None, 5.0, False)
    assert ada.at_endpoint("https://gpu2/v1").base_url == "https://gpu2/v1"


@pytest.mark.parametrize(("ada", "bo", "line"), [
    ('base_urls = []', "",
     "agents.ada.base_urls: an empty list; give the servers' addresses (or base_url for one)"),
    ('base_urls = ["http://a/v1"]\nbase_url = "http://b/v1"', "",
     "agents.ada.base_urls: give either base_url (one server) or base_urls (several), not both"),
    ('base_urls = ["http://a/v1", "ftp://b"]', "",
     "agents.ada.base_urls[1]: expected an http:// or https:// URL, got 'ftp://b'"),
    ('base_urls = ["http://a:port/v1"]', "",
     "agents.ada.base_urls[0]: expected an http:// or https:// URL, got 'http://a:port/v1'"),
    ('base_urls = ["http://a/v1", "HTTP://A:80/v1/"]', "",
     "agents.ada.base_urls[1]: the same server as base_urls[0] ('HTTP://A:80/v1/')"),
    ('base_urls = "http://a/v1"', "",
     "agents.ada.base_urls: expected a list of strings, got a string ('http://a/v1')"),
    ('base_url = "http://a/v1"\nendpoint_cool_down = 5', "",
     "agents.ada.endpoint_cool_down: only for an endpoint pool (base_urls)"),
    ('base_urls = ["http://a/v1"]\nendpoint_cool_down = -1', "",
     "agents.ada.endpoint_cool_down: expected a value from 0 to 100000000, got -1"),
    ('base_url = "http://a/v1"', 'base_urls = ["http://a/v1"]',
     "agents.bo.base_urls: not used by provider 'scripted'"),
])
def test_a_wrong_pool_is_one_line_from_validate(tmp_path: Path, ada: str, bo: str,
                                                line: str) -> None:
    path = pairing_file(tmp_path, ada, bo)
    result = cli("validate", path)
    assert (result.code, result.lines) == (2, [f"{path}: {line}"])


def test_a_pool_of_too_many_servers_is_refused(tmp_path: Path) -> None:
    urls = ", ".join(f'"http://gpu{n}/v1"' for n in range(257))
    result = cli("validate", pairing_file(tmp_path, f"base_urls = [{urls}]"))
    assert result.code == 2
    assert result.lines[0].endswith("agents.ada.base_urls: at most 256 servers, got 257")


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,5}){0,2}", fullmatch=True)
servers = st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
                    st.sampled_from(["http", "https"]), hosts,
                    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
                    st.sampled_from(["", "/v1", "/api/v1", "/openai/v1"]))


def _key(url: str) -> tuple[str, str]:
    """The server a generated URL names, as the check compares them."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    default = ":80" if scheme == "http" else ":443"
    return scheme, (host if ":" in host else host + default) + "/" + path.rstrip("/")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(urls=st.lists(servers, min_size=1, max_size=6, unique_by=_key), data=st.data())
def test_distinct_servers_are_accepted_and_any_repeat_is_refused(
        tmp_path: Path, urls: list[str], data: st.DataObject) -> None:
    listed = ", ".join(f'"{u}"' for u in urls)
    pairing = parse_pairing(BASE.format(ada=f"base_urls = [{listed}]", bo=""),
                            source="pool.toml")
    assert pairing.agent("ada").base_urls == tuple(urls)
    # The same server again, written another way, anywhere after it.
    n = data.draw(st.integers(0, len(urls) - 1))
    scheme, _, rest = urls[n].partition("://")
    host, slash, path = rest.partition("/")
    if ":" not in host:
        host += ":80" if scheme == "http" else ":443"
    again = f"{scheme.upper()}://{host.upper()}{slash}{path}/"
    at = data.draw(st.integers(n + 1, len(urls)))
    listed = ", ".join(f'"{u}"' for u in [*urls[:at], again, *urls[at:]])
    with pytest.raises(ConfigError) as refused:
        parse_pairing(BASE.format(ada=f"base_urls = [{listed}]", bo=""), source="pool.toml")
    assert [str(i) for i in refused.value.issues] == [
        f"agents.ada.base_urls[{at}]: the same server as base_urls[{n}] ('{again}')"]


@given(user=st.text(min_size=1, alphabet="abcdefghij0123456789-_"),
       password=st.text(min_size=6, alphabet="abcdefghij0123456789-_"),
       query=st.text(min_size=1, alphabet="abcdefghij0123456789=&-_"),
       server=servers)
def test_a_written_down_url_holds_no_credentials_or_query(
        user: str, password: str, query: str, server: str) -> None:
    scheme, _, rest = server.partition("://")
    assert public_url(f"{scheme}://{user}:{password}@{rest}?{query}#{password}") == server


def test_public_url_examples() -> None:
    assert public_url("http://u:secret@GPU1:8000/v1?key=abc#x") == "http://gpu1:8000/v1"
    assert public_url("https://[::1]:8443/v1") == "https://[::1]:8443/v1"
    assert public_url("http://a:notaport/v1") == "[unreadable URL]"


def test_a_pool_vouches_only_for_the_same_servers(tmp_path: Path) -> None:
    def seat(urls: str) -> Seat:
        text = BASE.format(ada=f"base_urls = [{urls}]", bo="")
        return Seat.of(parse_pairing(text, source="pool.toml").agent("ada"))

    mine = seat('"http://gpu1/v1", "http://gpu2/v1"')
    assert mine.endpoints == ("http://gpu1/v1", "http://gpu2/v1")
    assert mine.same_as(seat('"http://gpu2:80/v1/", "http://GPU1/v1"'))  # order aside
    assert not mine.same_as(seat('"http://gpu1/v1", "http://gpu2/v1", "http://evil/v1"'))
    assert not mine.same_as(seat('"http://gpu1/v1"'))
    assert "-> http://gpu1/v1, http://gpu2/v1" in mine.describe()
