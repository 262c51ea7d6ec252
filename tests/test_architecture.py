"""The layers stay as ARCHITECTURE.md draws them: imports run one way (cli → api → commands → library),
nothing below cli.py draws tables or knows typer, and only config.py parses YAML."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "flexseg"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), as dotted names;
    ``from flexseg import x`` counts as ``flexseg.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def importers_of(prefix: str) -> set[str]:
    return {m for m, deps in GRAPH.items() if any(d == prefix or d.startswith(prefix + ".") for d in deps)}


def test_the_graph_sees_real_imports():
    # a check that cannot fail is no check: the parser must find edges we know exist
    assert "flexseg.commands.train" in GRAPH["flexseg.api"]
    assert "flexseg.api" in GRAPH["flexseg.cli"]
    assert "flexseg.commands" in {d.rsplit(".", 1)[0] for d in GRAPH["flexseg.commands.demo"]}
    assert "yaml" in GRAPH["flexseg.config"]
    assert len(GRAPH) > 30


def test_no_library_module_imports_a_command():
    # cli, api and views are the layer above the commands (views draws their result types)
    above = ("flexseg.cli", "flexseg.api", "flexseg.views")
    library = {m for m in GRAPH if not m.startswith("flexseg.commands") and m not in above}
    offenders = sorted(m for m in importers_of("flexseg.commands") if m in library)
    assert not offenders, f"library modules importing a command: {offenders}"


def test_no_command_imports_another_but_the_demo():
    """A command is a thin layer over the library: what two commands share (the predictor, the
    scores) lives below them. The demo runs the others, so it imports them."""
    commands = {m for m in GRAPH if m.startswith("flexseg.commands.")}
    offenders = sorted(
        f"{m} → {d}"
        for m in commands - {"flexseg.commands.demo"}
        for d in GRAPH[m]
        if any(d == other or d.startswith(other + ".") for other in commands - {m})
    )
    assert not offenders, offenders
    assert any(d.startswith("flexseg.commands.train") for d in GRAPH["flexseg.commands.demo"])  # it can see one


def test_the_cli_reaches_the_commands_only_through_the_api():
    """The CLI parses and draws; what a command does is callable from Python (flexseg.api)."""
    assert not sorted(d for d in GRAPH["flexseg.cli"] if d.startswith("flexseg.commands")), GRAPH["flexseg.cli"]


def test_the_wheel_lists_every_package():
    """pyproject lists the packages by hand (flexseg.experiments is mapped from experiments/):
    a package left out would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert listed == on_disk | {"flexseg.experiments"}, listed ^ (on_disk | {"flexseg.experiments"})


def test_config_imports_no_command_and_nothing_from_data():
    bad = sorted(d for d in GRAPH["flexseg.config"] if d.startswith(("flexseg.commands", "flexseg.data")))
    assert not bad, bad


def test_commands_never_reach_back_into_the_cli_layer():
    offenders = sorted(m for m in importers_of("flexseg.cli") | importers_of("flexseg.views") if m != "flexseg.cli")
    assert not offenders, offenders
    assert importers_of("flexseg.api") == {"flexseg.cli"}, importers_of("flexseg.api")


def test_only_the_cli_knows_typer_and_only_views_draw_tables():
    assert importers_of("typer") == {"flexseg.cli"}
    assert importers_of("rich.table") <= {"flexseg.views"}
    assert importers_of("rich.table")  # the tables exist, in views


def test_only_config_parses_yaml():
    assert importers_of("yaml") == {"flexseg.config"}


PROBE = """
import os
import flexseg.cli
from flexseg import tfenv
assert "TF_CPU_ALLOCATOR_USE_BFC" not in os.environ, "set on import of the package"
tfenv.import_tensorflow_quietly()  # the CLI's way to TensorFlow, before any subpackage is imported
print(os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"), os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
"""


def test_tensorflow_gets_the_cpu_settings_whichever_way_it_is_first_loaded():
    """The allocator and oneDNN settings are read when TensorFlow loads: a path that loads it
    before flexseg's subpackages (the CLI's quiet import) must still set them, and a user's own
    value wins. (Missed once: in-process CLI training of the NBM model ran 35% slower.)"""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_ENABLE_ONEDNN_OPTS")}
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["true", "1"]
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert run.stdout.split() == ["true", "0"], run.stderr


def test_only_settings_reads_flexsegs_environment():
    """$FLEXSEG_* and $TF_CONFIG are read in flexseg/settings.py only (tfenv sets TensorFlow's own
    variables before it loads, the CLI OpenCV's)."""
    readers = {
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if "os.environ" in p.read_text(encoding="utf-8") or "os.getenv" in p.read_text(encoding="utf-8")
    }
    assert "flexseg.settings" in readers  # the check sees a reader
    assert readers <= {"flexseg.settings", "flexseg.tfenv", "flexseg.cli"}, readers
