"""Coding schemes: the shipped examples, every problem reported at once, FILE:NAME, the hash."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intermodel.coding.scheme import (
    LABEL,
    MAX_LABELS,
    SCHEME,
    TOP,
    Label,
    Scheme,
    load_scheme,
    load_schemes,
    parse_schemes,
    split_selection,
)
from intermodel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SCHEMES = REPO / "configs" / "schemes"

SMALL = """
[schemes.tone]
scope = "turn"
choice = "single"
instructions = "Code the tone of the reply."

[schemes.tone.labels.warm]
definition = "Friendly."
example = "Lovely to meet you!"

[schemes.tone.labels.cold]
definition = "Distant."
"""
# The hash of SMALL's scheme. It must never change: label records made under this scheme name it.
SMALL_DIGEST = "sha256:dc8f0e323adf7d5001db246fe31c6734f77b8ab2b5ddf4d5321322170001928b"


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_schemes(textwrap.dedent(text), source="s.toml")
    return str(caught.value).splitlines()


def test_the_shipped_engagement_scheme_codes_panel_answers() -> None:
    scheme = load_scheme(SCHEMES / "engagement.toml")
    assert (scheme.name, scheme.scope, scheme.choice) == ("engagement", "answer", "single")
    assert scheme.label_names == ("engaged", "deflecting", "mixed")
    assert all(label.definition and label.example for label in scheme.labels)
    assert "thinking" in scheme.instructions  # coders are told what to read
    assert scheme.source == str(SCHEMES / "engagement.toml")


def test_the_shipped_end_state_scheme_codes_runs() -> None:
    scheme = load_scheme(f"{SCHEMES / 'end_state.toml'}:end_state")
    assert (scheme.scope, scheme.choice) == ("run", "single")
    assert scheme.label_names == ("error", "stop_phrase", "silence", "emoji_collapse",
                                  "goodbye_loop", "self_repetition", "repetition", "ongoing",
                                  "incomplete")
    # The instructions give the order of precedence, in the labels' order.
    order = scheme.instructions.split("in this order:")[1].split(".")[0]
    assert [word.strip() for word in order.split(",")] == list(scheme.label_names)


def test_a_small_scheme_is_frozen_data() -> None:
    [scheme] = parse_schemes(SMALL, source="s.toml")
    assert scheme == Scheme("tone", "turn", "single", "Code the tone of the reply.",
                            (Label("warm", "Friendly.", "Lovely to meet you!"),
                             Label("cold", "Distant.")))
    assert scheme.label("cold").definition == "Distant."
    with pytest.raises(KeyError):
        scheme.label("lukewarm")
    with pytest.raises(AttributeError):
        scheme.name = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems("""
        [schemes.engagement]
        scop = "answer"
        choice = "many"
        instructions = "   "

        [schemes.engagement.labels.engaged]
        definition = "Takes it up."
        exmple = "..."

        [schemes.engagement.labels.unlabelled]
        definition = "Nothing."

        [schemes.engagement.labels."two words"]
        definition = "Bad name."

        [schemes.engagement.labels.Engaged]
        definition = "A twin."

        [schemes.engagement.labels.vague]

        [schemes.other]
        scope = "conversation"
        instructions = "Read it."
        labels = "yes, no"
    """)
    assert found == [
        "s.toml: schemes.engagement.scop: unknown key; did you mean 'scope'? (valid keys: "
        "scope, choice, instructions, labels)",
        "s.toml: schemes.engagement.choice: expected one of 'single', 'multiple', got 'many'",
        "s.toml: schemes.engagement.scope: missing (What is coded: `run`, `turn`, or `answer` "
        "(a panel's answer))",
        "s.toml: schemes.engagement.instructions: expected some text, got an empty string",
        "s.toml: schemes.engagement.labels.engaged.exmple: unknown key; did you mean 'example'? "
        "(valid keys: definition, example)",
        "s.toml: schemes.engagement.labels.unlabelled: 'unlabelled' is reserved: label records "
        "use it for a target no coder could label",
        "s.toml: schemes.engagement.labels.two words: expected a label name: a letter, then "
        "letters, digits, - and _ (at most 40)",
        "s.toml: schemes.engagement.labels.vague.definition: missing (When this label applies)",
        "s.toml: schemes.engagement.labels.Engaged: differs from 'engaged' only in case",
        "s.toml: schemes.other.scope: expected one of 'run', 'turn', 'answer', got "
        "'conversation'",
        "s.toml: schemes.other.labels: expected a table, got a string ('yes, no')",
    ]


def test_counts_of_labels_and_schemes_are_bounded() -> None:
    one = problems("""
        [schemes.x]
        scope = "run"
        instructions = "Read."
        labels.only = { definition = "The only one." }
    """)
    assert one == ["s.toml: schemes.x.labels: expected 2 to 20 labels, found 1"]
    many = "\n".join(f"labels.l{n} = {{ definition = \"d\" }}" for n in range(MAX_LABELS + 1))
    assert problems(f'[schemes.x]\nscope = "run"\ninstructions = "i"\n{many}\n') == [
        "s.toml: schemes.x.labels: expected 2 to 20 labels, found 21"]
    assert problems("schemes = {}\n") == ["s.toml: schemes: expected 1 to 100 schemes, found 0"]
    assert problems("[other]\n") == [
        "s.toml: other: unknown key (valid keys: schemes)",
        "s.toml: schemes: missing (The schemes, each a table [schemes.NAME])"]
    assert problems('schemes.x = "a scheme"\n') == [
        "s.toml: schemes.x: expected a table like [schemes.x]"]


def test_a_file_that_is_not_toml_or_not_a_regular_file(tmp_path: Path) -> None:
    assert problems("[schemes.x\n") == [
        "s.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 1, "
        "column 11)"]
    deep = "x = " + "[" * 40 + "]" * 40 + "\n"
    assert problems(deep) == ["s.toml: tables and lists nest more than 32 levels deep"]
    with pytest.raises(ConfigError, match=r"no_such\.toml: cannot read it: No such file"):
        load_schemes(tmp_path / "no_such.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[schemes.caf\xe9]\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: cannot read it: not UTF-8 text"):
        load_schemes(latin)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 1_048_576 + "\n")
    with pytest.raises(ConfigError, match=r"big\.toml: cannot read it: larger than 1 MiB"):
        load_schemes(big)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes to it: reading must not wait
    with pytest.raises(ConfigError, match=r"fifo.toml: cannot read it: not a regular file \(it "
                       r"is a FIFO"):
        load_schemes(fifo)


def test_file_colon_name_picks_one_scheme(tmp_path: Path) -> None:
    both = write(tmp_path, SMALL + SMALL.replace("schemes.tone", "schemes.mood"), "two.toml")
    assert load_scheme(f"{both}:mood").name == "mood"
    assert load_scheme(f"{both}:tone").name == "tone"
    with pytest.raises(ConfigError) as unnamed:
        load_scheme(both)
    assert str(unnamed.value) == f"{both}: defines 2 schemes (tone, mood); choose one as " \
                                 f"{both}:NAME"
    assert unnamed.value.exit_code == 2
    with pytest.raises(ConfigError) as unknown:
        load_scheme(f"{both}:topic")
    assert str(unknown.value) == f"{both}: schemes: no scheme named 'topic' (this file defines: " \
                                 "tone, mood)"


def test_a_colon_in_a_file_name_is_part_of_the_name(tmp_path: Path) -> None:
    odd = write(tmp_path, SMALL, "a:tone")  # the whole text names a file: it is the file
    assert split_selection(odd) == (odd, None)
    assert load_scheme(odd).name == "tone"
    assert split_selection("x/y.toml:not a name") == (Path("x/y.toml:not a name"), None)
    assert split_selection("y.toml:tone") == (Path("y.toml"), "tone")


def test_the_hash_is_the_documented_canonical_json() -> None:
    [scheme] = parse_schemes(SMALL, source="s.toml")
    assert scheme.digest == SMALL_DIGEST
    # Anyone can recompute it from the documented form, in a few lines of any language.
    canonical = {"name": "tone", "scope": "turn", "choice": "single",
                 "instructions": "Code the tone of the reply.",
                 "labels": [{"name": "warm", "definition": "Friendly.",
                             "example": "Lovely to meet you!"},
                            {"name": "cold", "definition": "Distant.", "example": ""}]}
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert scheme.digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_the_hash_ignores_layout_and_place_but_not_wording(tmp_path: Path) -> None:
    [scheme] = parse_schemes(SMALL, source="s.toml")
    relaid = """
        # the same scheme, written another way, in another file
        [schemes.tone]
        labels.warm = { example = "Lovely to meet you!", definition = \"\"\"
        Friendly.
        \"\"\" }
        instructions = '  Code the tone of the reply.  '
        labels.cold.definition = "Distant."
        scope = "turn"
    """
    [again] = parse_schemes(textwrap.dedent(relaid), source=str(tmp_path / "elsewhere.toml"))
    assert again.digest == scheme.digest
    assert again == scheme  # the source is not part of a scheme's identity
    variants = [
        SMALL.replace('"Friendly."', '"Friendly and warm."'),
        SMALL.replace('"Lovely to meet you!"', '"Lovely!"'),
        SMALL.replace('scope = "turn"', 'scope = "answer"'),
        SMALL.replace('choice = "single"', 'choice = "multiple"'),
        SMALL.replace("Code the tone", "Code the mood"),
        SMALL.replace("schemes.tone", "schemes.mood"),
        # the order coders see labels in (and a judge's prompt lists them in) is part of it
        SMALL[:SMALL.index("[schemes.tone.labels.warm]")] + SMALL[SMALL.index(
            "[schemes.tone.labels.cold]"):] + SMALL[SMALL.index(
                "[schemes.tone.labels.warm]"):SMALL.index("[schemes.tone.labels.cold]")],
    ]
    digests = {parse_schemes(text, source="s.toml")[0].digest for text in variants}
    assert len(digests) == len(variants) and scheme.digest not in digests


def test_labels_are_checked_against_the_scheme() -> None:
    [single] = parse_schemes(SMALL, source="s.toml")
    assert single.check_labels(["warm"]) is None
    assert single.check_labels(["hot"]) == "'hot' is not a label of tone (its labels: warm, cold)"
    assert single.check_labels(["warm", "cold"]) == "tone takes exactly one label (one of warm, " \
                                                    "cold), got 2"
    assert single.check_labels([]) == "tone takes exactly one label (one of warm, cold), got 0"
    [multiple] = parse_schemes(SMALL.replace('"single"', '"multiple"'), source="s.toml")
    assert multiple.check_labels(["warm", "cold"]) is None
    assert multiple.check_labels(["warm", "warm"]) == "a label is given twice"
    assert multiple.check_labels([]) == "tone takes one or more of its labels (warm, cold), " \
                                        "got none"


def test_every_schema_key_is_documented() -> None:
    reference = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")
    missing = [key for table in (TOP, SCHEME, LABEL) for key in table
               if f"`{key}`" not in reference]
    assert missing == []


def toml_value(value: object) -> str:
    """`value` written as TOML."""
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 32 or ord(c) == 127
                             else c for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)  # numbers: TOML spells them as Python does, nan and inf included


_VALUE = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.floats(),
                   st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_scheme_file_or_one_config_error(text: str) -> None:
    try:
        parse_schemes(text, source="s.toml")
    except ConfigError as exc:
        lines = str(exc).splitlines()
    else:
        return
    assert lines and all(line.startswith("s.toml: ") for line in lines)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(["scope", "choice", "instructions", "labels.warm.definition",
                            "labels.warm.example", "labels.x", "labels", "extra"]),
       value=_VALUE)
def test_any_value_in_any_place_is_accepted_or_reported_there(key: str, value: object) -> None:
    fields = {"scope": '"run"', "instructions": '"i"', "labels.warm.definition": '"w"',
              "labels.cold.definition": '"c"'}
    if key == "labels":
        fields = {k: v for k, v in fields.items() if not k.startswith("labels.")}
    fields[key] = toml_value(value)
    text = SMALL + "[schemes.tone2]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())
    try:
        schemes = parse_schemes(text, source="s.toml")
    except ConfigError as exc:
        lines = str(exc).splitlines()
    else:
        assert [s.name for s in schemes] == ["tone", "tone2"]
        return
    assert lines and all(line.startswith(f"s.toml: schemes.tone2.{key.split('.')[0]}")
                         for line in lines), lines
