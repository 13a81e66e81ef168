from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from .support import Study, make_study


@pytest.fixture(scope="session")
def _study_master(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """Made once: real scripted runs take a while."""
    return anyio.run(make_study, tmp_path_factory.mktemp("study"))


@pytest.fixture
def study(_study_master: Study, tmp_path: Path) -> Study:
    """A private copy of the study, for tests that add files or write indexes and pages."""
    folder = tmp_path / "study"
    shutil.copytree(_study_master.folder, folder)

    def moved(path: Path) -> Path:
        return folder / path.relative_to(_study_master.folder)

    master = _study_master
    return Study(folder, moved(master.runs), [moved(p) for p in master.panels],
                 moved(master.emoji), moved(master.loop), moved(master.stopped),
                 moved(master.ongoing), master.engagement, master.end_state)
