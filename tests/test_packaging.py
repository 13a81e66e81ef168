"""What a non-editable install gets: every package, the example pairings, and a working command."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_for_the_build() -> None:
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    mapping = setup["package-dir"]
    on_disk = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            on_disk.add(".".join([name, *relative.parts]) if relative.parts else name)
    assert on_disk == listed


@pytest.mark.slow
def test_a_wheel_install_runs_the_demo_and_the_ui(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "-w", str(tmp_path / "dist"), str(REPO)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("intermodel-*.whl")
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                                "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr
    # Run from an empty folder with only the wheel's copy on the path (ahead of this checkout).
    script = """
import sys, anyio
import intermodel, intermodel.tui.app as app
assert intermodel.__file__.startswith(sys.argv[1]), intermodel.__file__
assert app.__file__.startswith(sys.argv[1]), app.__file__
from intermodel.commands.running import demo_config
print(demo_config())
from intermodel.config import load_config
print(load_config(demo_config()).name)
scripted = load_config(str(demo_config()).replace("demo.toml", "scripted.toml"))

async def launch():  # the UI from the wheel, its stylesheet included, runs a pairing to the end
    ui = app.live_app(scripted.with_max_turns(2), record=False)
    async with ui.run_test(size=(100, 30)) as pilot:
        with anyio.fail_after(30):
            await ui.served.wait()
        await pilot.pause()
        print(ui.model.last_turn, ui.model.end.reason)

anyio.run(launch)
"""
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script, str(target)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(target / "intermodel" / "configs" / "demo.toml"),
                                          "demo", "2 max_turns"]
