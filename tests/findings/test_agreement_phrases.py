"""`validate` on scheme files, `agreement` and `phrases`, through the real command line, over real
scripted runs with labels beside them."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intermodel.analysis.agreement import krippendorff_alpha
from intermodel.coding.labels import Human, Target, sidecar_path
from intermodel.commands.findings_args import MAX_N
from tests.hostile.support import cli, cli_process

from .support import ALICE, BOB, ENGAGEMENT, JUDGE, REPO, Study, label

# -- validate --------------------------------------------------------------------------------------


def test_validate_recognises_scheme_files_by_their_content(tmp_path: Path) -> None:
    renamed = tmp_path / "my-codes.toml"  # not under configs/schemes: found by what it holds
    renamed.write_text((REPO / "configs" / "schemes" / "engagement.toml").read_text())
    result = cli("validate", renamed, REPO / "configs" / "schemes" / "end_state.toml",
                 REPO / "configs" / "scripted.toml")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"ok  {renamed}  (scheme engagement: answer, 3 labels)"
    assert lines[1].endswith("(scheme end_state: run, 9 labels)")
    assert lines[2].startswith(f"ok  {REPO / 'configs' / 'scripted.toml'}  (ada: scripted")


def test_a_bad_scheme_file_is_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[schemes.tone]\nscop = "run"\ninstructions = ""\n'
                   '[schemes.tone.labels.warm]\ndefinition = "Warm."\n')
    good = tmp_path / "good.toml"
    good.write_text((REPO / "configs" / "schemes" / "engagement.toml").read_text())
    result = cli("validate", bad, good)
    assert result.code == 2
    assert result.lines == [
        f"{bad}: schemes.tone.scop: unknown key; did you mean 'scope'? (valid keys: scope, "
        "choice, instructions, labels)",
        f"{bad}: schemes.tone.scope: missing (What is coded: `run`, `turn`, or `answer` (a "
        "panel's answer))",
        f"{bad}: schemes.tone.instructions: expected some text, got an empty string",
        f"{bad}: schemes.tone.labels: expected 2 to 20 labels, found 1",
    ]
    assert result.out.startswith(f"ok  {good}")


def test_a_file_that_is_neither_is_still_reported_as_a_pairing(tmp_path: Path) -> None:
    odd = tmp_path / "odd.toml"
    odd.write_text("name = 3\n")
    result = cli("validate", odd)
    assert result.code == 2 and result.lines and result.lines[0].startswith(f"{odd}: ")


# -- agreement -------------------------------------------------------------------------------------

JUDGE_NAME = "judge local (smollm2-135m)"


def expected_values() -> dict[int, dict[str, str | None]]:
    """The codings of support.py's table, written out by hand: the judge's unlabelled record and
    the target it never coded are both missing values."""
    return {unit: {"alice": a, "bob": b, JUDGE_NAME: j or None}
            for unit, (a, b, j) in enumerate(zip(ALICE, BOB, JUDGE, strict=True))}


def test_agreement_of_two_people_and_a_judge(study: Study) -> None:
    result = cli("agreement", study.runs, "--scheme", ENGAGEMENT, "--format", "json")
    assert result.code == 0, result.err
    # The dialogues and their run-scope labels are read too, and left out: another scheme.
    assert result.err == ""
    report = json.loads(result.out)
    assert report["labels"] == ["engaged", "deflecting", "mixed"]
    assert [(c["coder"], c["coded"], c["unlabelled"]) for c in report["coders"]] == [
        ("alice", 8, 0), ("bob", 8, 0), (JUDGE_NAME, 6, 1)]
    assert report["units"] == 8
    alpha = krippendorff_alpha(expected_values())
    assert report["alpha"]["value"] == pytest.approx(alpha.value)
    ab, aj, _ = report["pairs"]
    assert (ab["first"], ab["second"], aj["second"]) == ("alice", "bob", JUDGE_NAME)
    # alice and bob agree on 6 of 8; their marginals are (3, 3, 2) and (2, 4, 2) over
    # engaged, deflecting, mixed: p_e = (3·2 + 3·4 + 2·2) / 64 = 22/64.
    kappa = (Fraction(6, 8) - Fraction(22, 64)) / (1 - Fraction(22, 64))
    assert ab["kappa"]["value"] == pytest.approx(float(kappa))
    assert ab["kappa"]["units"] == 8
    assert ab["confusion"] == [[2, 0, 1], [0, 3, 0], [0, 1, 1]]
    assert aj["kappa"]["units"] == 6  # the judge labelled six of the answers
    # By name alone the scheme's order is unknown: labels come alphabetically.
    by_name = json.loads(cli("agreement", study.runs, "--scheme", "engagement",
                             "--format", "json").out)
    assert by_name["labels"] == ["deflecting", "engaged", "mixed"]
    assert by_name["alpha"] == report["alpha"]


def test_agreement_as_a_table(study: Study) -> None:
    result = cli("agreement", study.runs, "--scheme",
                 f"{REPO / 'configs' / 'schemes' / 'engagement.toml'}")
    assert result.code == 0, result.err
    out = result.out
    assert "scheme engagement (answer, single choice): 8 targets labelled by 3 coders" in out
    assert "Krippendorff's alpha (nominal), all coders: " in out
    assert "alice × bob" in out and "0.619" in out
    assert "alice (rows) × bob (columns): 8 targets, 6 agree" in out


def test_labels_of_another_wording_unknown_labels_and_missing_targets_are_set_aside(
        study: Study) -> None:
    panel = study.panels[0]
    reworded = replace(study.engagement, instructions="Shorter instructions.")
    label(panel, reworded, Target.answer("gpt"), ["engaged"], Human("carol"))
    label(panel, study.engagement, Target.answer("nobody"), ["engaged"], Human("carol"))
    label(panel, study.engagement, Target.answer("gem"), ["hostile"], Human("carol"))
    by_file = cli("agreement", study.runs, "--scheme",
                  f"{REPO / 'configs' / 'schemes' / 'engagement.toml'}:engagement")
    assert by_file.code == 0, by_file.err
    assert by_file.lines == [
        "intermodel: note: 1 label record set aside: its target is not in its transcript",
        "intermodel: note: 1 label record set aside: labels that do not fit the scheme "
        "('hostile' is not a label of engagement (its labels: engaged, deflecting, mixed))",
        "intermodel: note: 1 label record set aside: made under another wording of the scheme "
        "(another hash)"]
    by_name = cli("agreement", study.runs, "--scheme", "engagement")
    assert any("were made under 2 wordings" in line for line in by_name.lines)


def test_bad_and_foreign_files_are_skipped_and_counted(study: Study) -> None:
    (study.runs / "notes.jsonl").write_text('{"note": "not a run"}\n')
    sidecar_path(study.panels[1]).write_text('{"kind": "label", "run_id": 3}\n')
    result = cli("agreement", study.runs, "--scheme", "engagement", "--format", "json")
    assert result.code == 0
    assert result.lines[-1] == "intermodel: 2 files skipped"
    assert any(line.startswith(f"intermodel: skipped {sidecar_path(study.panels[1])}:1: ")
               for line in result.lines)
    assert json.loads(result.out)["units"] == 6  # the run whose labels are damaged has none


def test_an_unknown_scheme_is_one_line(study: Study) -> None:
    result = cli("agreement", study.runs, "--scheme", "tone")
    assert result.code == 2
    assert result.lines == ["intermodel: no labels under the scheme 'tone' in 8 runs (schemes "
                            "labelled there: end_state, engagement)"]
    missing = cli("agreement", study.runs / "nowhere", "--scheme", "tone")
    assert missing.code == 2 and missing.lines == [
        f"intermodel: {study.runs / 'nowhere'}: no such file or folder"]


def test_untrusted_coder_names_are_inert_on_the_terminal(study: Study) -> None:
    label(study.panels[0], study.engagement, Target.answer("gpt"), ["engaged"],
          Human("eve\u202emallory"))
    result = cli_process("agreement", study.runs, "--scheme", "engagement")
    assert result.code == 0, result.err
    assert "\u202e" not in result.out and "\x1b" not in result.out


# -- phrases ---------------------------------------------------------------------------------------


def test_phrases_counts_model_text_only(study: Study) -> None:
    result = cli("phrases", study.runs, "--n", "4", "--format", "json", "--top", "3")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert rows[0] == {"group": None, "phrase": "am here with you", "count": 26, "runs": 1}
    everything = cli("phrases", study.runs, "--n", "2", "--top", "100000", "--format", "json")
    phrases = {row["phrase"] for row in json.loads(everything.out)}
    assert "talk about" not in phrases  # the opener
    assert "you like" not in phrases  # the panel's prompt


def test_phrases_by_model_as_a_table(study: Study) -> None:
    result = cli("phrases", study.runs, "--by", "model", "--top", "1", "--min-runs", "4")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["MODEL", "PHRASE", "COUNT", "RUNS"]
    assert lines[1].split()[0] == "scripted:gemma-x" and lines[1].endswith("4/8")
    assert lines[2].split()[0] == "scripted:gpt-x"


def test_phrases_skips_foreign_files_and_checks_its_options(study: Study) -> None:
    (study.runs / "notes.jsonl").write_text("not json\n")
    result = cli("phrases", study.runs)
    assert result.code == 0 and result.lines[-1] == "intermodel: 1 file skipped"
    assert cli("phrases", study.runs, "--n", str(MAX_N + 1)).code == 2
    assert cli("phrases", study.runs, "--by", "colour").code == 2


def test_the_parser_knows_the_phrase_limit() -> None:
    from intermodel.analysis.phrases import MAX_N as LIMIT

    assert MAX_N == LIMIT


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["kind", "run_id", "target", "labels", "coder", "scheme",
                                     "scheme_hash", "at"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=20),
                              st.lists(st.text(max_size=5), max_size=3)),
                    max_size=8).map(lambda d: json.dumps({"kind": "label", **d}).encode())))
def test_any_sidecar_line_is_a_skipped_file_never_a_crash(study: Study, line: bytes) -> None:
    sidecar = sidecar_path(study.panels[2])
    sidecar.write_bytes(sidecar.read_bytes().split(b"\n", 1)[0] + b"\n" + line + b"\n")
    result = cli("agreement", study.runs, "--scheme", "engagement", "--format", "json")
    assert result.code in (0, 2)
    assert "Traceback" not in result.err
    if result.code == 0:
        json.loads(result.out)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=300),
    st.builds(lambda name, body: f"[schemes.{name}]\n{body}",
              st.text(alphabet="abcXYZ_-1 .\"", max_size=12),
              st.text(alphabet='abc =\n"[]._', max_size=200))))
def test_any_scheme_file_is_ok_or_one_line_per_problem(tmp_path_factory: pytest.TempPathFactory,
                                                       text: str) -> None:
    path = tmp_path_factory.mktemp("schemes") / "s.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("validate", path)
    assert result.code in (0, 2)
    assert "Traceback" not in result.err
    for line in result.lines:
        assert line.startswith(f"{path}: "), line
    if result.code == 0:
        assert result.out.startswith(f"ok  {path}")
