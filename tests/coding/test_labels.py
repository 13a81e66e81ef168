"""The labels sidecar: records that read back as written, untrusted lines refused one line each,
supersession, and appends from several processes at once that never mix."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intermodel.coding.labels import (
    MAX_TEXT,
    Human,
    Judge,
    LabelRecord,
    LabelWriter,
    Target,
    append_label,
    coder_name_problem,
    current,
    read_labels,
    read_sidecar,
    sidecar_path,
)
from intermodel.errors import TranscriptError, TranscriptInvalid
from intermodel.security.secrets import Redactor

RUN = "feedc0ffee00"
HASH = "sha256:" + "ab" * 32
REQUEST = "sha256:" + "cd" * 32
REPO = Path(__file__).resolve().parents[2]


def human(labels: tuple[str, ...] = ("engaged",), *, name: str = "alice",
          target: Target | None = None, **fields: object) -> LabelRecord:
    return LabelRecord(RUN, target or Target.answer("poet"), "engagement", HASH, labels,
                       Human(name), at="2026-01-02T03:04:05.000Z", **fields)  # type: ignore[arg-type]


def judge(labels: tuple[str, ...] = ("deflecting",), **fields: object) -> LabelRecord:
    fields.setdefault("request_hash", REQUEST)
    return LabelRecord(RUN, Target.answer("poet"), "engagement", HASH, labels,
                       Judge("openai:gpt-5.2", "gpt-5.2", "gpt-5.2-2026-01-01"),
                       at="2026-01-02T03:04:06.000Z", **fields)  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_sidecar_sits_beside_its_transcript() -> None:
    assert sidecar_path("night/20260102-030405-x-feedc0.jsonl") == \
        Path("night/20260102-030405-x-feedc0.labels.jsonl")
    assert sidecar_path("odd-name") == Path("odd-name.labels.jsonl")


def test_records_read_back_as_written(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    written = [
        human(rationale="Takes it up in the second paragraph.", blind=True, seed=7),
        judge(rationale="It lists tips instead.", attempts=2),
        judge((), unlabelled="after 3 attempts: no JSON object in the reply", attempts=3),
        human(("warm", "curious"), target=Target.of_turn(4)),
        human(("ongoing",), target=Target.run()),
    ]
    for record in written:
        assert append_label(transcript, record) == tmp_path / "run.labels.jsonl"
    found = read_sidecar(transcript, run_id=RUN)
    assert found.records == written
    assert (found.torn, found.unknown) == (None, 0)
    first, second, third = lines(found.path)[:3]
    assert first == {"kind": "label", "run_id": RUN,
                     "target": {"scope": "answer", "agent": "poet"}, "scheme": "engagement",
                     "scheme_hash": HASH, "labels": ["engaged"],
                     "rationale": "Takes it up in the second paragraph.",
                     "coder": {"kind": "human", "name": "alice"},
                     "at": "2026-01-02T03:04:05.000Z", "seed": 7, "blind": True}
    assert second["coder"] == {"kind": "judge", "spec": "openai:gpt-5.2", "model": "gpt-5.2",
                               "served_model": "gpt-5.2-2026-01-01"}
    assert (second["request_hash"], second["attempts"]) == (REQUEST, 2)
    assert (third["labels"], third["unlabelled"]) == ([], "after 3 attempts: no JSON object "
                                                      "in the reply")


def test_a_run_without_labels_has_an_empty_sidecar(tmp_path: Path) -> None:
    found = read_sidecar(tmp_path / "run.jsonl")
    assert found.records == [] and not found.path.exists()


def test_the_file_is_private_and_each_record_one_line(tmp_path: Path) -> None:
    path = append_label(tmp_path / "run.jsonl", human(rationale="line one\nline two"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().count(b"\n") == 1


def test_a_later_label_by_the_same_coder_supersedes_and_both_stay(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    records = [
        human(("engaged",)),
        judge(("deflecting",)),
        human(("mixed",), name="bob"),
        human(("engaged",), target=Target.answer("child")),
        replace(human(("engaged",)), scheme="tone"),
        human(("mixed",), rationale="On second reading: the last paragraph deflects."),
        # Another served model is the same judge; another spec or model is another coder.
        replace(judge(("engaged",)), coder=Judge("openai:gpt-5.2", "gpt-5.2", "other")),
        replace(judge(("mixed",)), coder=Judge("local", "bundled")),
    ]
    for record in records:
        append_label(transcript, record)
    found = read_sidecar(transcript)
    assert len(found.records) == 8  # nothing is ever removed
    assert found.current() == [records[2], records[3], records[4], records[5], records[6],
                               records[7]]
    assert current([]) == []


def test_unknown_kinds_are_counted_and_a_torn_last_line_is_set_aside(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    path = append_label(transcript, human())
    with path.open("a", encoding="utf-8") as file:
        file.write('{"kind":"comment","text":"from a later version"}\n\n')
        file.write('{"kind":"label","run_id":"feedc0ff')  # the writer died here
    found = read_labels(path)
    assert found.records == [human()]
    assert (found.unknown, found.torn, found.torn_bytes) == (1, '{"kind":"label","run_id":'
                                                             '"feedc0ff', 34)


def test_the_next_writer_cuts_a_torn_line_before_appending(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    path = append_label(transcript, human())
    torn = json.dumps(judge().to_json())[:-20].encode()
    with path.open("ab") as file:
        file.write(torn)
    with LabelWriter.open(transcript) as writer:
        assert writer.append(judge()) == len(torn)
        assert writer.append(human(name="bob")) == 0
    assert read_labels(path).records == [human(), judge(), human(name="bob")]
    # A file that is nothing but a torn line
    path.write_bytes(b'{"kind":"lab')
    append_label(transcript, human())
    assert read_labels(path).records == [human()]


def bad(tmp_path: Path, line: str | bytes, **read: str) -> str:
    path = tmp_path / "run.labels.jsonl"
    good = json.dumps(human().to_json()) + "\n"
    path.write_bytes(good.encode() + (line if isinstance(line, bytes) else line.encode())
                     + b"\n")
    with pytest.raises(TranscriptInvalid) as caught:
        read_labels(path, **read)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ")
    return message.removeprefix(f"{path}:2: ")


def with_(**changes: object) -> str:
    data = human().to_json()
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data, ensure_ascii=False)


@pytest.mark.parametrize(("line", "message"), [
    ("[1, 2]", "not a JSON object (got a list)"),
    ('{"kind": "label", ', "not valid JSON (Expecting property name enclosed in double quotes "
                           "at column 19)"),
    (b'{"kind": "\xff"}', "not valid UTF-8 (byte 0xff at column 11)"),
    ('{"run_id": "feedc0ffee00"}', "kind: missing"),
    ('{"kind": 7}', "kind: expected a string naming the record kind, got 7"),
    ('{"kind": "label", "x": NaN}', "NaN is not a number a transcript may hold"),
    ('{"kind": "label", "x": ' + "[" * 70 + "]" * 70 + "}",
     "label.x[0][0][0]: nested more than 64 levels deep"),
    (with_(rationale="SURROGATE").replace("SURROGATE", "\\ud800"),
     "label.rationale: a string holds a lone surrogate (not valid Unicode)"),
    (with_(scheme="a\nb"), 'label.scheme: expected a scheme name, got "a\\nb"'),
    (with_(run_id="FEEDC0FFEE00"), 'label.run_id: expected a run id (12 lowercase hex digits), '
                                   'got "FEEDC0FFEE00"'),
    (with_(run_id=None), "label.run_id: missing"),
    (with_(target={"scope": "reply"}), 'label.target.scope: expected "run", "turn" or "answer", '
                                       'got "reply"'),
    (with_(target={"scope": "turn"}), "label.target.turn: missing (a turn target names its "
                                      "turn)"),
    (with_(target={"scope": "turn", "turn": 0}), "label.target.turn: expected a whole number "
                                                 "from 1 to 1000000, got 0"),
    (with_(target={"scope": "run", "agent": "poet"}), "label.target.agent: a run target names "
                                                      "no agent"),
    (with_(target={"scope": "answer", "agent": "../x"}), 'label.target.agent: expected an agent '
                                                         'name, got "../x"'),
    (with_(scheme="two words"), 'label.scheme: expected a scheme name, got "two words"'),
    (with_(scheme_hash="sha256:abc"), 'label.scheme_hash: expected sha256: and 64 lowercase '
                                      'hex digits, got "sha256:abc"'),
    (with_(labels="engaged"), 'label.labels: expected a list of label names, got "engaged"'),
    (with_(labels=["engaged", "engaged"]), "label.labels: a label is given twice"),
    (with_(labels=["a b"]), 'label.labels[0]: expected a label name, got "a b"'),
    (with_(labels=[f"l{n}" for n in range(21)]), "label.labels: expected at most 20 labels, "
                                                 "got 21"),
    (with_(labels=[]), "label.labels: expected at least one label (or an `unlabelled` reason)"),
    (with_(unlabelled="no reply"), "label.unlabelled: a record with labels is not unlabelled"),
    (with_(labels=[], unlabelled=""), "label.unlabelled: expected the reason no label was "
                                      "given"),
    (with_(rationale="x" * (MAX_TEXT + 1)), "label.rationale: expected at most 65536 "
                                            "characters, got 65537"),
    (with_(coder={"kind": "model", "name": "x"}), 'label.coder.kind: expected "human" or '
                                                  '"judge", got "model"'),
    (with_(coder={"kind": "human"}), "label.coder.name: missing (a human coder has a name)"),
    (with_(coder={"kind": "human", "name": " alice"}), 'label.coder.name: expected a name that '
     'is not blank, with no spaces around it and no control characters, got " alice"'),
    (with_(coder={"kind": "human", "name": "al\u001b[2Jice"}), "label.coder.name: expected a "
     "name that is not blank, with no spaces around it and no control characters, got "
     '"al\u001b[2Jice"'),
    (with_(coder={"kind": "human", "name": "alice", "model": "x"}), "label.coder.model: a human "
                                                                    "coder has no model"),
    (with_(coder={"kind": "judge", "spec": "local"}), "label.coder.model: missing (a judge "
                                                      "coder has a model)"),
    (with_(coder={"kind": "judge", "spec": "local", "model": "bundled"}),
     "label.request_hash: missing (a judge's record holds the hash of its request)"),
    (with_(request_hash=REQUEST), "label.request_hash: only a judge's record has one"),
    (with_(attempts=0), "label.attempts: expected a whole number from 1 to 100000, got 0"),
    (with_(blind="yes"), 'label.blind: expected true or false, got "yes"'),
    (with_(seed=2**64), "label.seed: a number beyond 64 bits (18446744073709551616)"),
    (with_(at="yesterday"), 'label.at: expected an ISO 8601 time, got "yesterday"'),
    (with_(at=None), "label.at: missing"),
])
def test_each_bad_line_is_one_line_naming_file_line_and_field(
        tmp_path: Path, line: str | bytes, message: str) -> None:
    assert bad(tmp_path, line) == message


def test_labels_of_another_run_are_refused_when_the_run_is_known(tmp_path: Path) -> None:
    assert bad(tmp_path, with_(run_id="0123456789ab"), run_id=RUN) == \
        "label.run_id: this label is for run 0123456789ab, not for this transcript's run " \
        "feedc0ffee00"


def test_a_sidecar_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "run.labels.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(TranscriptInvalid, match=r"cannot read it: not a regular file \(it is a "
                       r"FIFO"):
        read_sidecar(tmp_path / "run.jsonl")
    with pytest.raises(TranscriptError, match="it is not a regular file"):
        append_label(tmp_path / "run.jsonl", human())  # nobody reads the FIFO: no wait


def test_a_fifo_someone_reads_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "run.labels.jsonl"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(TranscriptError, match="it is not a regular file"):
            append_label(tmp_path / "run.jsonl", human())
    finally:
        os.close(reader)


def test_labels_are_never_written_through_a_link(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (tmp_path / "run.labels.jsonl").symlink_to(precious)
    with pytest.raises(TranscriptError) as caught:
        append_label(tmp_path / "run.jsonl", human())
    assert str(caught.value) == f"cannot open labels {tmp_path / 'run.labels.jsonl'}: it is a " \
                                "symbolic link; intermodel does not write through links"
    assert precious.read_text() == "keep me\n"
    (tmp_path / "run.labels.jsonl").unlink()
    (tmp_path / "run.labels.jsonl").mkdir()
    with pytest.raises(TranscriptError, match=r"cannot open labels .*: Is a directory"):
        append_label(tmp_path / "run.jsonl", human())


def test_a_record_that_would_not_read_back_is_never_written(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    for record in (human(("two words",)), human(()), human(name=""), judge(request_hash=None),
                   human(rationale="\ud800"), replace(human(), run_id="../../etc")):
        with pytest.raises(ValueError, match="not a valid label record: label"):
            append_label(transcript, record)
    assert sidecar_path(transcript).read_bytes() == b""


def test_coder_names_for_the_command_line() -> None:
    assert coder_name_problem("Alice Martin") is None
    assert coder_name_problem("") == "a coder name is not blank and has no spaces around it"
    assert coder_name_problem("alice ") == "a coder name is not blank and has no spaces around it"
    assert coder_name_problem("a" * 101) == "a coder name has at most 100 characters"
    assert coder_name_problem("a\tb") == "a coder name holds no control characters"


def test_known_secrets_never_reach_the_sidecar(tmp_path: Path) -> None:
    secret = "sk-test-" + "Zq81kPw0" * 4
    record = judge(rationale=f"The answer quotes {secret} at length.")
    with LabelWriter.open(tmp_path / "run.jsonl", redactor=Redactor([secret])) as writer:
        writer.append(record)
    text = writer.path.read_text()
    assert secret not in text and "[redacted]" in text


@pytest.mark.anyio
async def test_records_from_tasks_are_written_off_the_event_loop(tmp_path: Path) -> None:
    import anyio

    with LabelWriter.open(tmp_path / "run.jsonl") as writer:
        async with anyio.create_task_group() as group:
            for n in range(1, 21):
                group.start_soon(writer.record, human(target=Target.of_turn(n)))
    turns = sorted(r.target.turn or 0 for r in read_labels(writer.path).records)
    assert turns == list(range(1, 21))


def test_a_closed_writer_says_so(tmp_path: Path) -> None:
    writer = LabelWriter.open(tmp_path / "run.jsonl")
    writer.close()
    writer.close()
    with pytest.raises(TranscriptError, match="are closed"):
        writer.append(human())


APPENDER = textwrap.dedent("""
    import sys
    from intermodel.coding.labels import Human, LabelRecord, LabelWriter, Target
    transcript, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with LabelWriter.open(transcript) as writer:
        print("open", flush=True)
        for n in range(1, count + 1):
            writer.append(LabelRecord("feedc0ffee00", Target.of_turn(n), "tone",
                                      "sha256:" + "ab" * 32, ("warm",), Human(name),
                                      rationale=name[0] * 60_000))
""")


def appender(transcript: Path, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", APPENDER, str(transcript), name, str(count)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_two_processes_appending_at_once_never_mix_their_lines(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    with appender(transcript, "alice", 60) as first, appender(transcript, "bob", 60) as second:
        assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    # Each record is 60 kB, far beyond what one write is sure to place whole without the lock.
    # (read_labels would refuse a mixed line; the rationales say it was not merely glued.)
    records = read_labels(sidecar_path(transcript)).records
    for name in ("alice", "bob"):
        mine = [r for r in records if r.coder == Human(name)]
        assert [r.target.turn for r in mine] == list(range(1, 61))
        assert all(r.rationale == name[0] * 60_000 for r in mine)


def test_an_append_waits_for_the_lock_another_holds(tmp_path: Path) -> None:
    transcript = tmp_path / "run.jsonl"
    path = append_label(transcript, human())
    holder = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with appender(transcript, "bob", 1) as other:
            assert other.stdout is not None and other.stdout.readline() == "open\n"
            time.sleep(0.5)
            assert other.poll() is None  # still waiting
            assert len(read_labels(path).records) == 1
            fcntl.flock(holder, fcntl.LOCK_UN)
            assert other.wait(timeout=30) == 0
    finally:
        os.close(holder)
    assert [r.coder for r in read_labels(path).records] == [Human("alice"), Human("bob")]


_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,39}", fullmatch=True)
_TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
_TARGETS = st.one_of(st.just(Target.run()),
                     st.builds(Target.of_turn, st.integers(1, 1_000_000)),
                     st.builds(Target.answer, st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,31}",
                                                            fullmatch=True)))
_CODER_NAME = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                      max_size=100).filter(lambda s: coder_name_problem(s) is None)


@st.composite
def records(draw: st.DrawFn) -> LabelRecord:
    is_judge = draw(st.booleans())
    labelled = draw(st.booleans())
    labels = tuple(draw(st.lists(_NAME, min_size=1, max_size=20, unique=True))) if labelled \
        else ()
    coder = Judge(draw(_CODER_NAME), draw(_CODER_NAME), draw(st.sampled_from(["", "m-1"]))) \
        if is_judge else Human(draw(_CODER_NAME))
    return LabelRecord(
        draw(st.from_regex(r"[0-9a-f]{12}", fullmatch=True)), draw(_TARGETS), draw(_NAME),
        "sha256:" + draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)), labels, coder,
        rationale=draw(_TEXTS), unlabelled=None if labelled else draw(_TEXTS.filter(bool)),
        request_hash=REQUEST if is_judge else None,
        attempts=draw(st.integers(1, 100_000)) if is_judge else None,
        blind=draw(st.booleans()), seed=draw(st.none() | st.integers(-2**63, 2**63 - 1)),
        at=draw(st.datetimes()).isoformat() + "Z" if draw(st.booleans())
        else draw(st.datetimes()).isoformat())


@settings(max_examples=200, deadline=None)
@given(st.lists(records(), min_size=1, max_size=5))
def test_any_valid_record_reads_back_exactly(tmp_path_factory: pytest.TempPathFactory,
                                             written: list[LabelRecord]) -> None:
    transcript = tmp_path_factory.mktemp("labels") / "run.jsonl"
    with LabelWriter.open(transcript) as writer:
        for record in written:
            writer.append(record)
    assert read_labels(writer.path).records == written


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    _JSON.map(lambda v: json.dumps(v).encode()),
    # a valid record with one field replaced by anything
    st.tuples(st.sampled_from(sorted(human().to_json())), _JSON).map(
        lambda change: json.dumps({**human().to_json(), change[0]: change[1]}).encode()),
))
def test_any_line_is_a_record_or_one_error_naming_it(tmp_path_factory: pytest.TempPathFactory,
                                                     line: bytes) -> None:
    path = tmp_path_factory.mktemp("labels") / "run.labels.jsonl"
    path.write_bytes(line.replace(b"\n", b" ") + b"\n")
    try:
        found = read_labels(path)
    except TranscriptInvalid as exc:
        message = str(exc)
    else:
        assert len(found.records) + found.unknown <= 1
        return
    assert message.startswith(f"{path}:1: ") and "\n" not in message
