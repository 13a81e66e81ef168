"""`intermodel judge`: real runs coded by real judges — the scripted provider, an OpenAI-compatible
judge on the loopback fake server, and (where installed) the bundled local model — through the
real command, in real processes where it matters (Ctrl-C, exit codes, output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from intermodel.coding.judge import judge_request, material
from intermodel.coding.labels import Judge, Target, read_sidecar
from intermodel.coding.scheme import load_scheme
from intermodel.config.model import AgentConfig
from intermodel.experiment.judges import resolve_judge
from intermodel.experiment.judging import Judging
from intermodel.providers.base import Provider
from intermodel.providers.registry import make_provider
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault, ScriptedResponder
from tests.hostile.support import cli_process

from .support import ENGAGEMENT, PANEL, run

REPO = Path(__file__).resolve().parents[2]
SCHEME = load_scheme(ENGAGEMENT)


def judges_file(folder: Path, replies: list[str], extra: str = "") -> Path:
    """A panel file whose agent `picky` is a scripted judge replying `replies` in turn."""
    quoted = ", ".join(json.dumps(r.replace("{", "{{").replace("}", "}}")) for r in replies)
    path = folder / "judges.toml"
    path.write_text(f'name = "judges"\n[panel]\nprompt = "-"\n[agents.picky]\n'
                    f'provider = "scripted"\nmodel = "picky-1"\n[agents.picky.script]\n'
                    f'replies = [{quoted}]\nwhen_exhausted = "repeat_last"\n{extra}')
    return path


def panels(folder: Path, count: int) -> list[Path]:
    return [anyio.run(run, PANEL, folder, f"panel{n}") for n in range(count)]


def records(path: Path) -> list[dict[str, object]]:
    sidecar = path.with_name(path.name.removesuffix(".jsonl") + ".labels.jsonl")
    return [json.loads(line) for line in sidecar.read_text().splitlines()]


def judging(folder: Path, spec: str, **options: object) -> tuple[Judging, list[Provider]]:
    """A Judging over every transcript in `folder/runs`, keeping the providers it makes."""
    made: list[Provider] = []

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        made.append(make_provider(agent, partner, credentials))
        return made[-1]

    runs = []
    for path in sorted((folder / "runs").glob("*.jsonl")):
        if not path.name.endswith(".labels.jsonl"):
            runs.append((read_transcript(path), read_sidecar(path).current()))
    judge = resolve_judge(spec, SCHEME)
    return Judging(runs, SCHEME, judge, provider_factory=factory, **options), made  # type: ignore[arg-type]


# -- a scripted judge ------------------------------------------------------------------------------


def test_invalid_then_wrong_then_right(tmp_path: Path) -> None:
    [path] = panels(tmp_path, 1)
    replies = ["no json here", '{"label": "curious"}',
               '{"label": "engaged", "rationale": "It answers."}']
    spec = f"{judges_file(tmp_path, replies)}:picky"
    job, made = judging(tmp_path, spec, concurrency=1)
    report = anyio.run(job.run)
    assert report.count("coded") == 2
    found = read_sidecar(path).records
    assert [r.target for r in found] == [Target.answer("gpt"), Target.answer("gem")]
    first = found[0]
    assert first.labels == ("engaged",) and first.rationale == "It answers."
    assert first.coder == Judge(spec, "picky-1", "picky-1") and first.attempts == 3
    assert first.scheme_hash == SCHEME.digest and not first.blind
    # The hash is the exact last request: the first, its two replies and two corrections.
    sent = [r for r in made[0].requests if "the answer of gpt" in r.messages[0].content]  # type: ignore[attr-defined]
    assert len(sent) == 3 and first.request_hash == sent[-1].digest()
    assert [m.role for m in sent[-1].messages] == ["user", "assistant", "user", "assistant",
                                                   "user"]
    assert "holds no JSON object" in sent[1].messages[2].content
    assert "'curious' is not a label of engagement" in sent[2].messages[4].content
    assert sent[0].digest() == judge_request(
        resolve_judge(spec, SCHEME).agent, SCHEME,
        material(read_transcript(path), Target.answer("gpt"))).digest()


def test_no_usable_reply_is_recorded_as_unlabelled(tmp_path: Path) -> None:
    [path] = panels(tmp_path, 1)
    spec = f"{judges_file(tmp_path, [json.dumps({'label': 'maybe'})])}:picky"
    job, _ = judging(tmp_path, spec, attempts=2)
    report = anyio.run(job.run)
    assert report.count("unlabelled") == 2
    record = read_sidecar(path).records[0]
    assert record.labels == () and record.attempts == 2
    assert record.unlabelled == ("no usable reply after 2 attempts; the last: 'maybe' is not a "
                                 "label of engagement (its labels: engaged, deflecting, mixed)")


def test_the_cli_codes_a_folder_and_skips_what_is_coded(tmp_path: Path) -> None:
    paths = panels(tmp_path, 2)
    first = cli_process("judge", tmp_path / "runs", "--scheme", ENGAGEMENT, "--judge",
                        "scripted:deflecting", "--blind")
    assert first.code == 0, first.err
    assert "4 targets to code in 2 runs (0 coded before" in first.out
    assert "4 coded, 0 unlabelled of 4 targets" in first.out
    for path in paths:
        found = records(path)
        assert [r["labels"] for r in found] == [["deflecting"], ["deflecting"]]
        assert all(r["blind"] is True and r["coder"] == {
            "kind": "judge", "spec": "scripted:deflecting", "model": "scripted",
            "served_model": "scripted"} for r in found)
    again = cli_process("judge", tmp_path / "runs", "--scheme", ENGAGEMENT, "--judge",
                        "scripted:deflecting")
    assert again.code == 0 and "0 targets to code in 2 runs (4 coded before" in again.out
    other = cli_process("judge", tmp_path / "runs", "--scheme", ENGAGEMENT, "--judge",
                        "scripted", "--dry-run")
    assert other.code == 0 and "4 targets to code" in other.out  # another judge
    assert len(records(paths[0])) == 2


def test_ctrl_c_then_again_carries_on(tmp_path: Path) -> None:
    paths = panels(tmp_path, 6)
    judges = judges_file(tmp_path, ['{"label": "mixed"}'], extra="delay = 0.3\n")
    command = [sys.executable, "-m", "intermodel", "judge", str(tmp_path / "runs"), "--scheme",
               str(ENGAGEMENT), "--judge", f"{judges}:picky"]
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, "NO_COLOR": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sidecar = paths[0].with_name(paths[0].name.removesuffix(".jsonl") + ".labels.jsonl")
    deadline = time.monotonic() + 60
    while not sidecar.exists() and time.monotonic() < deadline:  # one target coded
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to carry on" in out
    coded = sum(len(records(p)) for p in paths if p.with_name(
        p.name.removesuffix(".jsonl") + ".labels.jsonl").exists())
    assert 1 <= coded < 12
    again = subprocess.run([*command, "--concurrency", "4"], cwd=REPO, capture_output=True,
                           text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert f"{12 - coded} targets to code in 6 runs ({coded} coded before" in again.stdout
    assert [len(records(p)) for p in paths] == [2] * 6  # each target once, none twice


def test_show_request_prints_the_exact_request(tmp_path: Path) -> None:
    [path] = panels(tmp_path, 1)
    run_id = read_transcript(path).run_id
    shown = cli_process("judge", path, "--scheme", ENGAGEMENT, "--judge", "openai:gpt-5.2",
                        "--show-request", "answer:gpt", "--blind")
    assert shown.code == 0, shown.err  # no key needed to look
    body, last = shown.out.rsplit("}\n", 1)
    request = json.loads(body + "}")
    assert request["model"] == "gpt-5.2"
    content = request["messages"][0]["content"]
    assert "the answer of the model" in content and "gpt-x" not in content
    expected = judge_request(resolve_judge("openai:gpt-5.2", SCHEME).agent, SCHEME,
                             material(read_transcript(path), Target.answer("gpt"), blind=True))
    assert expected.to_json() == request and expected.digest() in last and run_id in last
    first = cli_process("judge", path, "--scheme", ENGAGEMENT, "--judge", "local",
                        "--show-request")
    assert first.code == 0 and "gpt (scripted:gpt-x)" in first.out  # not blind: names shown
    missing = cli_process("judge", path, "--scheme", ENGAGEMENT, "--judge", "local",
                          "--show-request", "answer:nobody")
    assert missing.code == 2 and missing.err.count("\n") == 1
    assert f"targets like: {run_id}:answer:gpt" in missing.err


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--scheme", "nosuch.toml"], 2, "nosuch.toml: cannot read it"),
    (["--scheme", f"{ENGAGEMENT}:nosuch"], 2, "no scheme named 'nosuch'"),
    (["--judge", "openai:gpt-5.2"], 2, "OPENAI_API_KEY is not set"),
    (["--judge", "gpt-5.2"], 2, "expected local, scripted, openai:MODEL"),
    (["--judge", "openai"], 2, "name the model, as openai:MODEL"),
    (["--judge", "configs/scripted.toml:nobody"], 2, "has no agent 'nobody'"),
    (["--show-request", "turn:zero"], 2, "expected [RUN:]run"),
])
def test_expected_failures_are_one_line(tmp_path: Path, args: list[str], code: int,
                                        message: str) -> None:
    [path] = panels(tmp_path, 1)
    defaults = {"--scheme": str(ENGAGEMENT), "--judge": "scripted"}
    for i in range(0, len(args), 2):
        defaults[args[i]] = args[i + 1]
    extra = [a for a in args if a == "--show-request" or a.startswith("turn")]
    result = cli_process("judge", path, "--scheme", defaults["--scheme"], "--judge",
                         defaults["--judge"], *extra, "--yes")
    assert result.code == code, result.err
    assert message in result.err and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err


# -- an OpenAI-compatible judge on the loopback server ------------------------------------------


def server_judge(folder: Path, server: FakeServer, retry: str = "") -> Path:
    path = folder / "served.toml"
    path.write_text(textwrap.dedent(f"""
        name = "served"
        [panel]
        prompt = "-"
        [agents.judge]
        provider = "openai"
        model = "judge-model"
        base_url = "{server.base_url}/v1"
        api_key_env = "JUDGE_KEY"
        timeout = 5
        [retry]
        backoff_initial = 0.01
        backoff_max = 0.05
        max_retry_after = 0.1
        {retry}
        """))
    return path


def test_an_openai_compatible_judge_with_a_rate_limit(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    [path] = panels(tmp_path, 1)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-0123456789abcdef")
    with FakeServer() as server:
        server.responder = ScriptedResponder([
            '{"label": "deflecting", "rationale": "Only a disclaimer. sk-judge-0123456789abcdef"}',
            'I think {"label": "engaged"}'])
        server.faults.push(Fault.status(429, retry_after="0"))
        judge = f"{server_judge(tmp_path, server)}:judge"
        job, _ = judging(tmp_path, judge, blind=True)
        report = anyio.run(job.run)
        sent = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert report.count("coded") == 2
    assert len(sent) == 3  # the 429, then one request per answer
    found = read_sidecar(path).records
    assert [r.labels for r in found] == [("deflecting",), ("engaged",)]
    assert "sk-judge" not in found[0].rationale  # the judge's key never reaches a sidecar
    assert "sk-judge" not in (path.parent / found[0].key[0]).as_posix()
    assert found[0].coder == Judge(judge, "judge-model", "judge-model") and found[0].blind
    assert sent[1]["model"] == "judge-model"
    assert all("gpt" not in json.dumps(body["messages"]) for body in sent)  # blind on the wire


def test_an_unreachable_judge_stops_with_one_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    panels(tmp_path, 1)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-0123456789abcdef")
    with FakeServer() as server:
        judges = server_judge(tmp_path, server, retry="attempts = 1")
    # The server is gone: its port refuses connections.
    result = cli_process("judge", tmp_path / "runs", "--scheme", ENGAGEMENT, "--judge",
                         f"{judges}:judge", "--yes", timeout=60)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "could not connect" in result.err.lower() or "connect" in result.err.lower()
    assert result.err.count("\n") == 1
    assert "run the same command again to carry on" in result.out


# -- the bundled local model -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_local_model_codes_real_answers(tmp_path: Path) -> None:
    from tests.conftest import require_local_model

    require_local_model()
    paths = panels(tmp_path, 1)
    judges = tmp_path / "local.toml"  # the bundled model, with short replies to keep it quick
    judges.write_text('name = "local"\n[panel]\nprompt = "-"\n[agents.small]\n'
                      'provider = "local"\nmax_tokens = 48\ntemperature = 0\nseed = 1\n')
    result = cli_process("judge", tmp_path / "runs", "--scheme", ENGAGEMENT, "--judge",
                         f"{judges}:small", "--attempts", "2", "--yes", timeout=600)
    assert result.code == 0, result.err
    found = records(paths[0])
    assert len(found) == 2
    for record in found:
        # Held to the answer's schema by a grammar, even a 135M model answers with a label.
        assert record["labels"] in (["engaged"], ["deflecting"], ["mixed"]), record
        assert record["rationale"], record
        assert record["coder"]["spec"] == f"{judges}:small"  # type: ignore[index]
        assert record["coder"]["model"] == "bundled"  # type: ignore[index]
        assert str(record["request_hash"]).startswith("sha256:")
