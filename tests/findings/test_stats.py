"""`stats` gains end states, turns before ending and label fractions with Wilson intervals, per
model, agent, experiment group or label: through the real command line, over real runs."""

from __future__ import annotations

import csv
import io
import json

from tests.hostile.support import cli

from .support import ENGAGEMENT, Study


def test_sidecars_beside_transcripts_are_not_skipped_files(study: Study) -> None:
    result = cli("stats", study.runs)
    assert result.code == 0
    assert result.err == ""  # eight transcripts, eight sidecars: no file set aside


def test_the_table_adds_end_states_and_label_fractions_by_model(study: Study) -> None:
    out = cli("stats", study.runs).out
    ends = out[out.index("End states by model"):out.index("Labels by model")]
    pair = "scripted:gpt-x + scripted:gemma-x"
    assert [line.split()[:5] for line in ends.splitlines()[2:] if line] == [
        [*pair.split(), "stop_phrase", "1/4"],
        [*pair.split(), "emoji_collapse", "1/4"],
        [*pair.split(), "self_repetition", "1/4"],
        [*pair.split(), "ongoing", "1/4"],
    ]
    labels = out[out.index("Labels by model"):].splitlines()
    # Wilson 95% for 3 of 4: [0.30, 0.95]; the judge's unlabelled answer is not counted.
    assert any(line.split()[:4] == ["engagement", "alice", "scripted:gpt-x", "deflecting"]
               and line.endswith("3/4 = 0.75 [0.30, 0.95]") for line in labels)
    assert any(line.startswith("engagement  judge local (smollm2-135m)  scripted:gpt-x")
               and "deflecting" in line and line.endswith("3/3 = 1.00 [0.44, 1.00]")
               for line in labels)


def rows(*args: str) -> list[dict[str, str]]:
    result = cli("stats", *args, "--format", "csv")
    assert result.code == 0, result.err
    return list(csv.DictReader(io.StringIO(result.out)))


def test_label_fractions_per_agent_for_one_coder_as_csv(study: Study) -> None:
    table = rows(str(study.runs), "--by", "agent", "--coder", "bob")
    labels = [(r["group"], r["value"], r["k"], r["n"]) for r in table if r["kind"] == "label"]
    assert labels == [("gem", "deflecting", "0", "4"), ("gem", "engaged", "2", "4"),
                      ("gem", "mixed", "2", "4"), ("gpt", "deflecting", "4", "4"),
                      ("gpt", "engaged", "0", "4"), ("gpt", "mixed", "0", "4")]
    gpt = next(r for r in table if r["group"] == "gpt" and r["value"] == "deflecting")
    assert round(float(gpt["low"]), 2) == 0.51 and float(gpt["high"]) == 1.0


def test_a_scheme_file_orders_labels_and_a_judge_is_chosen_by_its_spec(study: Study) -> None:
    result = cli("stats", study.runs, "--by", "group", "--scheme", ENGAGEMENT, "--coder", "local",
                 "--format", "json")
    assert result.code == 0, result.err
    table = json.loads(result.out)
    labels = [(r["value"], r["k"], r["n"]) for r in table if r["kind"] == "label"]
    assert labels == [("engaged", 3, 6), ("deflecting", 3, 6), ("mixed", 0, 6)]
    assert {r["group"] for r in table} == {"demo / invitation / free", "demo / self / sea",
                                            "ongoing"}


def test_end_states_and_turns_before_ending_by_label(study: Study) -> None:
    table = rows(str(study.runs), "--by", "label")
    emoji = next(r for r in table if r["group"] == "end_state:emoji_collapse (alice)")
    # Six turns; the collapse starts at turn 3, so two turns came before it.
    assert (emoji["value"], emoji["k"], emoji["n"]) == ("emoji_collapse", "1", "1")
    assert (emoji["turns_mean"], emoji["before_mean"]) == ("6.0", "2.0")
    assert all(r["kind"] == "end_state" for r in table)


def test_findings_options_check_their_values(study: Study) -> None:
    assert cli("stats", study.runs, "--by", "colour").code == 2
    bad = cli("stats", study.runs, "--scheme", "two words", "--format", "json")
    assert bad.code == 2 and bad.lines == [
        "intermodel: --scheme 'two words': expected a scheme name, or a scheme file (FILE or "
        "FILE:NAME)"]
