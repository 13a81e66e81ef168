"""The `intermodel` command end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intermodel.cli import main

REPO = Path(__file__).resolve().parents[2]


def intermodel(*args: str, env: dict[str, str] | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**clean, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1"}


def only_transcript(folder: Path) -> Path:
    [path] = folder.glob("*.jsonl")
    return path


def test_headless_run_streams_records_and_exports(env: dict[str, str], tmp_path: Path) -> None:
    result = intermodel("run", "configs/scripted.toml", "--headless", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "── ada · turn 1/8 " in out and "── bo · turn 2/8 " in out
    assert "══ finished: stop phrase by ada" in out
    assert "\x1b" not in out  # NO_COLOR and not a terminal
    assert result.stderr == ""
    transcript = only_transcript(tmp_path / "runs")
    assert "scripted-demo" in transcript.name
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert records[-1]["kind"] == "end" and records[-1]["ended_by"] == "ada"

    exported = intermodel("export", str(transcript), "--format", "md", env=env)
    assert exported.returncode == 0, exported.stderr
    markdown = transcript.with_suffix(".md").read_text()
    assert "### Turn 7 · ada" in markdown

    inspected = intermodel("inspect", str(transcript), "--turn", "3", env=env)
    assert inspected.returncode == 0
    assert "matches the recorded hash" in inspected.stdout
    every = intermodel("inspect", str(transcript), env=env)
    assert "7 of 7 turns match" in every.stdout


def test_turns_override_and_no_transcript(env: dict[str, str], tmp_path: Path) -> None:
    result = intermodel("run", "configs/scripted.toml", "--headless", "--turns", "2",
                        "--no-transcript", env=env)
    assert result.returncode == 0
    assert "finished: max turns (2 turns)" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_bad_config_is_one_line_per_problem_and_exit_2(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "configs" / "scripted.toml").read_text().replace(
        "max_turns = 8", "max_turn = 8"))
    result = intermodel("run", str(bad), "--headless", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"intermodel: {bad}: dialogue.max_turn: unknown key; did you mean "
                           "'max_turns'? (valid keys: opener, ")
    assert intermodel("validate", str(bad), env=env).returncode == 2


def test_missing_key_is_reported_before_any_request(env: dict[str, str]) -> None:
    result = intermodel("run", "configs/claude-vs-gpt.toml", "--headless", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ANTHROPIC_API_KEY is not set" in result.stderr
    assert "OPENAI_API_KEY is not set" in result.stderr


def test_validate_checks_every_example(env: dict[str, str]) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.toml"))
    result = intermodel("validate", *files, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok  ") == len(files)
    strict = intermodel("validate", "--strict", "configs/claude-vs-gpt.toml", env=env)
    assert strict.returncode == 2


def test_unreadable_transcript_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    result = intermodel("export", str(missing), env=env)
    assert result.returncode == 2
    assert result.stderr == f"intermodel: {missing}: cannot read it: No such file or directory\n"


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM],
                                     [signal.SIGINT, signal.SIGINT]],
                         ids=["int", "term", "int-int"])
def test_signals_stop_gracefully_and_close_the_transcript(
        env: dict[str, str], tmp_path: Path, signals: list[signal.Signals]) -> None:
    slow = tmp_path / "slow.toml"
    slow.write_text((REPO / "configs" / "scripted.toml").read_text().replace(
        "delay = 0.03", "delay = 0.3"))
    proc = subprocess.Popen([sys.executable, "-m", "intermodel", "run", str(slow), "--headless"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until a turn is streaming
        if line.startswith("── ada · turn 1"):
            break
    time.sleep(0.5)
    for sig in signals:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    if len(signals) == 1:  # a second signal exits at once, without the summary
        assert "finished: interrupted" in out
    records = [json.loads(line) for line in only_transcript(tmp_path / "runs").read_text()
               .splitlines()]
    assert [r["kind"] for r in records[-2:]] == ["discard", "end"]
    assert records[-1]["reason"] == "interrupted"


def test_version_and_help_work_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("intermodel ")


def _wire_pairing(tmp_path: Path, base_url: str) -> Path:
    config = tmp_path / "wire.toml"
    config.write_text(f"""
name = "wire"
[dialogue]
opener = "Start."
max_turns = 4
[retry]
backoff_initial = 0.01
[agents.ada]
provider = "openai"
model = "m-a"
base_url = "{base_url}/v1"
[agents.bo]
provider = "anthropic"
model = "m-b"
base_url = "{base_url}"
api_key_env = "TEST_KEY"
""")
    return config


def test_headless_run_against_real_sdks_with_a_retry(env: dict[str, str], tmp_path: Path) -> None:
    from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder

    with FakeServer() as srv:
        srv.responder = ScriptedResponder([Reply("Hello \x1b[2J[bold red]there[/]",
                                                 thinking="quietly", thinking_style="think_tags")])
        srv.faults.push(Fault.ok(), Fault.status(529))
        result = intermodel("run", str(_wire_pairing(tmp_path, srv.base_url)), "--headless",
                            env={**env, "TEST_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert "↻ bo turn 2: server unavailable 529 — retrying in" in result.stdout
    assert "Hello ␛[2J[bold red]there[/]" in result.stdout
    assert "\x1b" not in result.stdout
    assert "  ┆ quietly" in result.stdout


def test_fatal_provider_error_is_one_line_and_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    from tests.fakeserver import FakeServer, Fault

    with FakeServer() as srv:
        srv.faults.push(Fault.status(404))
        result = intermodel("run", str(_wire_pairing(tmp_path, srv.base_url)), "--headless",
                            env={**env, "TEST_KEY": "k"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    line = "ada: openai 404 model not found: The model does not exist."
    assert f"══ finished: error ({line})" in result.stdout
    assert result.stderr == f"intermodel: {line}\n"


def test_a_full_disk_stops_the_run_with_one_clear_line(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    import resource

    def small_disk() -> None:  # files may not grow past 6 kB: the header fits, turns soon don't
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    long = tmp_path / "long.toml"
    long.write_text((REPO / "configs" / "scripted.toml").read_text().replace(
        "max_turns = 8", "max_turns = 40").replace('stop_phrases = ["^C^C"]', "").replace(
        "delay = 0.03", "delay = 0").replace("delay = 0.04", "delay = 0"))
    result = subprocess.run([sys.executable, "-m", "intermodel", "run", str(long), "--headless"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                            preexec_fn=small_disk, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("intermodel: cannot write transcript ")
    assert "the disk is full or the file reached a size limit" in line
    assert "══ finished: error (cannot write transcript" in result.stdout
    transcript = only_transcript(tmp_path / "runs")
    assert transcript.stat().st_size <= 6000


def test_the_morning_after_commands(env: dict[str, str], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert intermodel("run", "configs/scripted.toml", "--headless", env=env).returncode == 0
    assert intermodel("run", "configs/scripted.toml", "--headless", "--turns", "3",
                      env=env).returncode == 0
    table = intermodel("stats", str(runs), env=env)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("scripted-demo") >= 2 and "stop_phrase" in table.stdout
    csv = intermodel("stats", str(runs), "--format", "csv", env=env)
    header, *lines = csv.stdout.splitlines()
    assert "run_id" in header and len(lines) == 4  # two runs x two agents
    html = intermodel("export", str(runs), "--format", "html", env=env)
    assert html.returncode == 0, html.stderr
    assert (runs / "index.html").exists() and len(list(runs.glob("*.html"))) == 3
    index = intermodel("index", str(runs), env=env)
    assert index.returncode == 0, index.stderr
    assert "2 added" in index.stdout
    assert (runs / "intermodel.sqlite").exists()
    again = intermodel("index", str(runs), env=env)
    assert "2 unchanged" in again.stdout
    missing = intermodel("stats", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
