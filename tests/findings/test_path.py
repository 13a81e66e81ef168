"""From a batch to findings as a user does it, every step a real `intermodel` process: batch,
a blind scripted judge, a person's labels (as `code` writes them; its screen has its own Pilot
tests), validate, agreement, phrases, stats, index, export."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from intermodel.analysis.study import read_study
from intermodel.coding.labels import Human, Target
from intermodel.coding.scheme import load_scheme
from tests.hostile.support import cli_process

from .support import ENGAGEMENT, PANEL, label

# A scripted judge that reads what it is shown, as a model would: its label depends on the answer.
JUDGES = """
name = "judges"
[panel]
prompt = "-"
[agents.reader]
provider = "scripted"
[agents.reader.script.when]  # {{ and }}: literal braces, as in every scripted reply
"tides" = '{{"label": "engaged", "rationale": "It names what it would think about."}}'
"As an AI" = '{{"label": "deflecting", "rationale": "It turns to tips."}}'
"""
EXPERIMENT = """
name = "trial"
out = "{out}"
replicates = 3
turns = 4
concurrency = 2

[[pairings]]
file = "panel.toml"
label = "panel"

[[openers]]
label = "free"
text = "What would you like to think about?"
"""


def test_batch_to_findings(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text(PANEL)
    experiment = tmp_path / "trial.toml"
    experiment.write_text(EXPERIMENT.format(out=tmp_path / "out"))
    batch = cli_process("batch", experiment, "--yes", timeout=120)
    assert batch.code == 0, batch.err
    runs, _ = read_study(tmp_path / "out")
    assert len(runs) == 3
    engagement = load_scheme(ENGAGEMENT)
    assert cli_process("validate", ENGAGEMENT).code == 0

    (tmp_path / "judges.toml").write_text(JUDGES)
    spec = f"{tmp_path / 'judges.toml'}:reader"
    judged = cli_process("judge", tmp_path / "out", "--scheme", ENGAGEMENT, "--judge", spec,
                         "--blind", "--yes", timeout=120)
    assert judged.code == 0, judged.err
    for run in runs:
        for agent, person in (("gpt", "deflecting"), ("gem", "engaged")):
            label(run.path, engagement, Target.answer(agent), [person], Human("ann"))

    agreement = cli_process("agreement", tmp_path / "out", "--scheme", ENGAGEMENT,
                            "--format", "json")
    assert agreement.code == 0, agreement.err
    report = json.loads(agreement.out)
    # ann and the judge: gpt deflecting, gemma engaged, in every replicate. Full agreement.
    [pair] = report["pairs"]
    assert report["units"] == 6 and pair["kappa"]["value"] == 1.0

    phrases = cli_process("phrases", tmp_path / "out", "--by", "model", "--n", "2")
    assert phrases.code == 0 and "3/3" in phrases.out

    stats = cli_process("stats", tmp_path / "out", "--by", "model", "--format", "json")
    assert stats.code == 0, stats.err
    deflecting = [(r["group"], r["coder"], r["k"], r["n"]) for r in json.loads(stats.out)
                  if r["value"] == "deflecting"]
    judge = f"judge {spec} (scripted)"
    assert sorted(deflecting) == [
        ("scripted:gemma-x", "ann", 0, 3), ("scripted:gemma-x", judge, 0, 3),
        ("scripted:gpt-x", "ann", 3, 3), ("scripted:gpt-x", judge, 3, 3)]

    assert cli_process("index", tmp_path / "out").code == 0
    with closing(sqlite3.connect(tmp_path / "out" / "intermodel.sqlite")) as db:
        assert db.execute("SELECT model, fraction FROM label_fractions WHERE label = "
                          "'deflecting' AND coder = 'ann' ORDER BY model").fetchall() == [
            ("scripted:gemma-x", 0.0), ("scripted:gpt-x", 1.0)]

    export = cli_process("export", tmp_path / "out", "--format", "html")
    assert export.code == 0 and export.err == ""
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<h3>engagement · ann</h3>" in index
