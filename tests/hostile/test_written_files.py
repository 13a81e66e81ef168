"""Files intermodel writes: exports, the manifest and the SQLite index are private (mode 600), are
never written through a link planted in their folder, and a Markdown export carries nothing from a
transcript (model, server or config text) that a viewer would run or read as page structure."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import pytest

from intermodel.analysis.markdown import to_markdown
from intermodel.config.experiment import load_experiment
from intermodel.experiment.batch import Batch
from intermodel.transcript.reader import read_transcript

REPO = Path(__file__).resolve().parents[2]
PRECIOUS = "precious contents\n"


def intermodel(*args: str, env: Mapping[str, str], timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**clean, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recorded")
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(folder), "NO_COLOR": "1"}
    done = intermodel("run", "configs/scripted.toml", "--headless", "--turns", "3", env=env)
    assert done.returncode == 0, done.stderr
    [transcript] = folder.glob("*.jsonl")
    return transcript


@pytest.fixture
def transcript(recorded: Path, tmp_path: Path) -> Path:
    """A fresh copy of a short finished run, in a folder of its own."""
    folder = tmp_path / "shared"
    folder.mkdir()
    return Path(shutil.copy(recorded, folder / "t.jsonl"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's that a planted link points at."""
    path = tmp_path / "victim.txt"
    path.write_text(PRECIOUS)
    return path


# ---- modes ------------------------------------------------------------------------------------

def test_every_export_and_the_index_are_created_readable_by_their_owner_only(
        transcript: Path, env: dict[str, str]) -> None:
    old = os.umask(0o022)
    try:
        for args in (["export", str(transcript)],
                     ["export", str(transcript), "-o", str(transcript.parent / "other.md")],
                     ["export", str(transcript), "--format", "html"],
                     ["export", str(transcript.parent), "--format", "html"],
                     ["index", str(transcript.parent)]):
            result = intermodel(*args, env=env)
            assert result.returncode == 0, (args, result.stderr)
    finally:
        os.umask(old)
    folder = transcript.parent
    for name in ("t.md", "other.md", "t.html", "index.html", "intermodel.sqlite"):
        assert mode(folder / name) == 0o600, name
    for companion in folder.glob("intermodel.sqlite-*"):
        assert mode(companion) == 0o600, companion.name
    # Nothing was left behind on the way.
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_an_export_replacing_a_readable_file_leaves_a_private_one(
        transcript: Path, env: dict[str, str]) -> None:
    target = transcript.with_suffix(".md")
    target.write_text("an older export")
    target.chmod(0o644)
    assert intermodel("export", str(transcript), env=env).returncode == 0
    assert mode(target) == 0o600 and "# scripted-demo" in target.read_text()


def test_a_batch_manifest_is_private_and_not_written_through_a_link(
        tmp_path: Path, victim: Path) -> None:
    (tmp_path / "pair.toml").write_text((REPO / "configs" / "scripted.toml").read_text())
    experiment = tmp_path / "exp.toml"
    experiment.write_text(f'name = "m"\nout = "{tmp_path / "out"}"\nturns = 2\n'
                          '[[pairings]]\nfile = "pair.toml"\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json.tmp").symlink_to(victim)  # the old fixed temporary name
    anyio.run(Batch(load_experiment(experiment), environ={}).run)
    manifest = tmp_path / "out" / "manifest.json"
    assert json.loads(manifest.read_text())["experiment"] == "m"
    assert mode(manifest) == 0o600
    assert victim.read_text() == PRECIOUS


# ---- links planted where exports go -----------------------------------------------------------

Plant = Callable[[Path, Path], Path]  # (transcript, victim) -> the export written


def md_at_default(transcript: Path, victim: Path) -> Path:
    transcript.with_suffix(".md").symlink_to(victim)
    return transcript.with_suffix(".md")


def html_at_default(transcript: Path, victim: Path) -> Path:
    transcript.with_suffix(".html").symlink_to(victim)
    return transcript.with_suffix(".html")


def html_temporary(transcript: Path, victim: Path) -> Path:
    (transcript.parent / ".t.html.tmp").symlink_to(victim)
    return transcript.with_suffix(".html")


def index_page(transcript: Path, victim: Path) -> Path:
    (transcript.parent / "index.html").symlink_to(victim)
    (transcript.parent / ".index.html.tmp").symlink_to(victim)
    return transcript.parent / "index.html"


EXPORTS: dict[str, tuple[Plant, list[str]]] = {
    "md": (md_at_default, ["export", "{t}"]),
    "md -o": (md_at_default, ["export", "{t}", "-o", "{md}"]),
    "html": (html_at_default, ["export", "{t}", "--format", "html"]),
    "html temporary": (html_temporary, ["export", "{t}", "--format", "html"]),
    "html index": (index_page, ["export", "{folder}", "--format", "html"]),
}


@pytest.mark.parametrize("case", list(EXPORTS))
def test_a_link_planted_where_an_export_goes_is_replaced_not_followed(
        case: str, transcript: Path, victim: Path, env: dict[str, str]) -> None:
    plant, template = EXPORTS[case]
    written = plant(transcript, victim)
    args = [a.format(t=transcript, md=transcript.with_suffix(".md"), folder=transcript.parent)
            for a in template]
    result = intermodel(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == PRECIOUS
    assert not written.is_symlink() and mode(written) == 0o600
    assert written.read_text().lstrip().startswith(("# ", "<!DOCTYPE html>"))


def test_an_export_onto_a_fifo_or_a_folder_is_refused_at_once(
        transcript: Path, env: dict[str, str]) -> None:
    fifo = transcript.with_suffix(".md")
    os.mkfifo(fifo)
    result = intermodel("export", str(transcript), env=env, timeout=20)
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    folder = transcript.parent / "a-folder.html"
    folder.mkdir()
    result = intermodel("export", str(transcript), "--format", "html", "-o", str(folder), env=env)
    assert result.returncode == 2 and "not a regular file" in result.stderr


# ---- the SQLite index -------------------------------------------------------------------------

@pytest.mark.parametrize("at", ["", "-wal", "-journal", "-shm"])
def test_the_index_refuses_a_link_at_its_database_or_journals(
        at: str, transcript: Path, victim: Path, env: dict[str, str]) -> None:
    db = transcript.parent / "intermodel.sqlite"
    Path(f"{db}{at}").symlink_to(victim)
    result = intermodel("index", str(transcript.parent), env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "symbolic link" in line
    assert victim.read_text() == PRECIOUS


def test_the_index_creates_nothing_at_a_dangling_link(
        transcript: Path, tmp_path: Path, env: dict[str, str]) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite"
    (transcript.parent / "intermodel.sqlite").symlink_to(elsewhere)
    result = intermodel("index", str(transcript.parent), env=env)
    assert result.returncode == 2 and not elsewhere.exists()


def test_an_existing_index_is_updated_in_place(transcript: Path, env: dict[str, str]) -> None:
    assert intermodel("index", str(transcript.parent), env=env).returncode == 0
    again = intermodel("index", str(transcript.parent), env=env)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout


# ---- the Markdown export escapes what a transcript says -----------------------------------------

HOSTILE = ("<img src=x onerror=alert(1)>[click](javascript:alert(1)) `tick` **bold** "
           "![pic](http://x/y.png) | a | b |\n## Forged heading\n\x1b[2J &amp; end")


def hostile_transcript(transcript: Path) -> Path:
    """The recorded run with HOSTILE in every field a model, a server or a config fills."""
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    header = records[0]
    config = header["config"]
    config["name"] = HOSTILE
    config["description"] = HOSTILE
    header["started_at"] = HOSTILE
    header["versions"]["intermodel"] = HOSTILE
    end = records.pop()
    for record in records[1:]:
        if record["kind"] == "turn":
            record.update(model=HOSTILE, stop_reason=HOSTILE)
    records += [
        {"kind": "retry", "turn": 2, "agent": "bo", "attempt": 1, "error": HOSTILE,
         "message": HOSTILE, "status": 503, "wait": 1.0, "at": HOSTILE},
        {"kind": "discard", "turn": 4, "agent": "ada", "reason": HOSTILE, "text": HOSTILE},
        {"kind": "note", "message": HOSTILE, "at": HOSTILE},
        {"kind": "flag", "detector": HOSTILE, "turn": 3, "agent": "ada", "action": HOSTILE,
         "detail": HOSTILE},
        {"kind": "trim", "agent": "ada", "turn": 3, "dropped_through": 1, "dropped": [1],
         "estimated_tokens": 10, "window": 8, "cause": HOSTILE},
        {"kind": "branch", "run_id": "0123456789ab", "transcript": HOSTILE, "after_turn": 1},
        {"kind": "resume", "run_id": header["run_id"], "after_turn": 3, "max_turns": 3,
         "at": HOSTILE},
    ]
    end.update(reason=HOSTILE, detail=HOSTILE, ended_by="ada")  # readers check agent names
    records.append(end)
    transcript.write_text("".join(json.dumps(r) + "\n" for r in records))
    return transcript


def test_the_markdown_export_escapes_every_field_from_a_model_server_or_config(
        transcript: Path) -> None:
    markdown = to_markdown(read_transcript(hostile_transcript(transcript)))
    assert "<img" not in markdown and "\x1b" not in markdown
    assert "&amp;amp;" in markdown  # an entity in the text stays text
    # No link, image, code span or emphasis can be made of a value: their punctuation is escaped
    # everywhere outside the quoted blocks of prose.
    outside_quotes = [line for line in markdown.splitlines() if not line.startswith(">")]
    for line in outside_quotes:
        assert not re.search(r"(?<!\\)\[click|(?<!\\)`tick|(?<!\\)\*\*bold|(?<!\\)!\[pic", line), \
            line
    # A line break in a value cannot start a heading (or anything else) of its own.
    assert "Forged heading" in markdown
    assert not [line for line in markdown.splitlines() if line.startswith("## Forged")]
    # Every field really was shown (escaped), not dropped.
    shown = markdown.count("\\[click\\](javascript:alert(1))")
    assert shown >= 16, shown


def test_a_description_stays_inside_its_quote(transcript: Path) -> None:
    markdown = to_markdown(read_transcript(hostile_transcript(transcript)))
    start = markdown.index("> &lt;img")
    block = markdown[start:markdown.index("\n\n", start)]
    assert all(line.startswith(">") for line in block.splitlines())

