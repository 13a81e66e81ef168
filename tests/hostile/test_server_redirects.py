"""Hostile servers and headers, through the real SDKs over real loopback HTTP: redirects that
would carry credentials elsewhere are never followed, and header values that can never be sent
are refused in the pairing, or end a turn as one fatal line, never as a retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from intermodel.config.credentials import resolve_credentials
from intermodel.engine.prepare import prepared_run
from intermodel.errors import EXIT_USAGE, ConfigError, ProviderError
from tests.fakeserver import FakeServer, Fault

from .server_pairings import (
    ENV,
    KEY,
    PROTOCOLS,
    collect,
    pairing_for,
    pairing_text,
    provider_for,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", [301, 307, 308])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_model_request_follows_no_redirect(server: FakeServer, protocol: str,
                                                   code: int) -> None:
    with FakeServer() as elsewhere:
        path = "/v1/chat/completions" if protocol == "openai" else "/v1/messages"
        server.faults.push(Fault.redirect(elsewhere.base_url + path, code))
        headers = {"x-api-key": "proxy-secret-value", "X-Proxy-Token": "token-secret-value"}
        with pytest.raises(ProviderError) as caught:
            await collect(provider_for(protocol, server, headers=headers))
        assert elsewhere.requests == []  # nothing, and no credential, went elsewhere
    error = caught.value
    assert (error.kind, error.status, error.transient) == ("provider_broken", code, False)
    assert f"redirects to {elsewhere.base_url}{path}" in error.message
    assert "\n" not in error.describe()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_not_even_a_redirect_to_the_same_server_is_followed(server: FakeServer,
                                                                   protocol: str) -> None:
    server.faults.push(Fault.redirect(server.base_url + "/elsewhere", 308))
    with pytest.raises(ProviderError, match="redirects to"):
        await collect(provider_for(protocol, server))
    assert [r.path for r in server.requests if r.method == "POST"] == [
        "/v1/chat/completions" if protocol == "openai" else "/v1/messages"]


async def test_the_context_probes_follow_no_redirect(server: FakeServer) -> None:
    with FakeServer() as elsewhere:
        server.every_request = Fault.redirect(elsewhere.base_url + "/props", 307)
        provider = provider_for("openai", server, headers={"x-api-key": "proxy-secret-value"})
        try:
            assert await provider.context_limit() is None  # type: ignore[attr-defined]
        finally:
            await provider.aclose()
        assert elsewhere.requests == []
    assert [r.path for r in server.requests] == ["/props", "/v1/models", "/api/show"]


BAD_VALUES = {"line feed": "Bearer abc\nX-Injected: 1", "carriage return": "abc\rdef",
              "control character": "abc\x01def", "non-ASCII": "café"}


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
async def test_a_header_value_that_cannot_be_sent_is_refused_in_the_pairing(
        make_pairing, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        make_pairing(extra=f"[agents.ada.extra_headers]\nX-Trace = {json.dumps(value)}\n")
    [issue] = caught.value.issues
    assert issue.path == "agents.ada.extra_headers.X-Trace"
    assert "header values are printable ASCII" in issue.message
    assert ("line break" in issue.message) == (value != BAD_VALUES["control character"]
                                               and value != BAD_VALUES["non-ASCII"])


async def test_a_header_name_that_cannot_be_sent_is_refused(make_pairing) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="not a header name"):
        make_pairing(extra='[agents.ada.extra_headers]\n"X Bad:Name" = "v"\n')


async def test_a_line_break_read_from_the_environment_is_refused_before_any_request(
        server: FakeServer) -> None:
    pairing = pairing_for(server.base_url, extra_a='[agents.ada.extra_headers]\n'
                                                   'X-Proxy-Token = "Bearer ${PROXY_TOKEN}"\n')
    environ = {**ENV, "PROXY_TOKEN": "secret\r\nX-Injected: yes"}
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(pairing, environ)
    [issue] = caught.value.issues
    assert issue.path == "agents.ada.extra_headers.X-Proxy-Token"
    assert "line break" in issue.message and "secret" not in str(caught.value)
    with pytest.raises(ConfigError):
        async with prepared_run(pairing, record=False, environ=environ):
            pass
    assert server.requests == []
    with pytest.raises(ConfigError, match=r"api_key_env: the key in TEST_KEY holds a line break"):
        resolve_credentials(pairing, {"TEST_KEY": KEY + "\n"})


def _intermodel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO,
                          env={**os.environ, **env, "NO_COLOR": "1"}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_validate_and_run_refuse_a_header_with_a_line_break_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(pairing_text("http://127.0.0.1:9", extra_a='[agents.ada.extra_headers]\n'
                                                                 'X-Token = "${PROXY_TOKEN}"\n'))
    env = {**ENV, "PROXY_TOKEN": "abc\ndef", "INTERMODEL_TRANSCRIPTS": str(tmp_path / "t")}
    checked = _intermodel("validate", str(config), env=env)
    assert checked.returncode == EXIT_USAGE
    [line] = [x for x in checked.stdout.splitlines() if "error:" in x]
    assert "X-Token: with its variables read, the value holds a line break" in line
    ran = _intermodel("run", str(config), "--headless", env=env)
    assert ran.returncode == EXIT_USAGE
    assert ran.stderr.count("\n") == 1 and "holds a line break" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "t").exists()  # refused before a transcript was started


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_header_the_http_library_refuses_is_fatal_not_retried(server: FakeServer,
                                                                      protocol: str) -> None:
    # Past the config checks (a provider given such a value directly): still no retry for hours.
    provider = provider_for(protocol, server, headers={"X-Trace": "a\r\nX-Injected: 1"})
    with pytest.raises(ProviderError) as caught:
        await collect(provider)
    assert (caught.value.kind, caught.value.transient) == ("bad_request", False)
    assert caught.value.message.startswith("the request could not be sent")
    assert server.requests == []
