"""The experiments shipped with flexseg (package data ``flexseg.experiments``; ``experiments/`` in
a checkout): listed and copied by ``flexseg experiments``, the demo's read by ``flexseg demo``.

A shipped experiment's relative paths assume a project laid out as this repository is:
``experiments/<name>.yaml``, ``data/``, ``runs/``; so ``flexseg experiments NAME`` copies into
``./experiments`` by default."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from flexseg.errors import ConfigError, RunError

PACKAGE = "flexseg.experiments"


@dataclass(frozen=True)
class ShippedExperiment:
    name: str  # the file's stem: demo, nbm, kneebones3dify, ...
    description: str  # the first sentence of its leading comment
    text: str  # the YAML as shipped


def shipped_experiments() -> list[ShippedExperiment]:
    """Every experiment shipped with flexseg, by name."""
    found = []
    for entry in sorted(resources.files(PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            found.append(ShippedExperiment(entry.name.removesuffix(".yaml"), _first_sentence(text), text))
    return found


def _first_sentence(text: str) -> str:
    block = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        block.append(line.lstrip("#").strip())
    sentence = " ".join(block).split(". ")[0].split(" (")[0].rstrip(".")
    return sentence if len(sentence) <= 90 else sentence[:89] + "…"


def shipped_experiment(name: str) -> ShippedExperiment:
    """The shipped experiment ``name`` (a ConfigError listing the names when there is none)."""
    shipped = {e.name: e for e in shipped_experiments()}
    if name.removesuffix(".yaml") not in shipped:
        raise ConfigError(f"no shipped experiment {name!r}; flexseg ships {', '.join(shipped)}")
    return shipped[name.removesuffix(".yaml")]


def copy_experiments(names: list[str], folder: Path) -> list[tuple[Path, bool]]:
    """Copy shipped experiments into ``folder`` as ``<name>.yaml``, atomically; a file already there
    is left as it is when it is the same, and refused when it differs (it may be the user's own).
    Returns (path, written) for each name: written False when an identical copy was there."""
    from flexseg.fsutil import atomic_write_text

    chosen = [shipped_experiment(name) for name in names]
    same = set()
    for exp in chosen:
        target = folder / f"{exp.name}.yaml"
        if target.exists():
            if not (target.is_file() and target.read_text(encoding="utf-8", errors="replace") == exp.text):
                raise RunError(
                    f"{target} exists and differs from flexseg's {exp.name}; rename it, or copy with --to DIR"
                )
            same.add(exp.name)
    folder.mkdir(parents=True, exist_ok=True)
    for exp in chosen:
        if exp.name not in same:
            atomic_write_text(folder / f"{exp.name}.yaml", exp.text)
    return [(folder / f"{exp.name}.yaml", exp.name not in same) for exp in chosen]
