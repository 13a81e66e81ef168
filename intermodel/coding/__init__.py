"""Coding runs: schemes that say what may be said about a run, a turn or an answer, and the label
records coders (people and judge models) leave beside each transcript.

    scheme = load_scheme("configs/schemes/engagement.toml:engagement")
    append_label(transcript, LabelRecord(run_id, Target.answer("poet"), scheme.name,
                                         scheme.digest, ("engaged",), Human("alice")))
    in_force = read_sidecar(transcript).current()
"""

from __future__ import annotations

from intermodel.coding.labels import (
    Coder,
    Human,
    Judge,
    LabelFile,
    LabelRecord,
    LabelWriter,
    Target,
    append_label,
    current,
    read_labels,
    read_sidecar,
    sidecar_path,
)
from intermodel.coding.scheme import Label, Scheme, load_scheme, load_schemes, parse_schemes

__all__ = [
    "Coder",
    "Human",
    "Judge",
    "Label",
    "LabelFile",
    "LabelRecord",
    "LabelWriter",
    "Scheme",
    "Target",
    "append_label",
    "current",
    "load_scheme",
    "load_schemes",
    "parse_schemes",
    "read_labels",
    "read_sidecar",
    "sidecar_path",
]
