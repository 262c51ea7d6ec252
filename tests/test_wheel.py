"""The package works outside this checkout: the wheel is built, installed into a fresh virtual
environment in an empty folder, and there ``flexseg --help``, ``flexseg experiments`` and a
one-epoch ``flexseg demo`` run from what the wheel holds (the experiments are package data). The
demo runs twice: the second rewrites its raw dataset by its record, and files the user added stay;
a demo started while the first runs is refused at once, naming it.

The new environment takes flexseg's dependencies (TensorFlow and the rest, 1.5 GB) from this
checkout's environment through a path file instead of installing them again: that would take a
minute of the 5 CI has for every test. ``make wheel-check`` does the full install, with pip
resolving the dependencies from the wheel's metadata."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.robustness.test_processes import digest, wait_for

pytestmark = pytest.mark.slow


def run(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_the_wheel_installs_and_runs_the_demo_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("flexseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"flexseg/experiments/demo.yaml", "flexseg/experiments/nbm.yaml", "flexseg/api.py"} <= set(names)
    assert not [n for n in names if n.startswith("tests/")]

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # see the module's text
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    flexseg = env_dir / "bin" / "flexseg"
    where = run(python, "-c", "import flexseg; print(flexseg.__file__)", cwd=empty).stdout.strip()
    assert where.startswith(str(site)), where  # the wheel's copy, not the checkout
    assert "Usage: flexseg" in run(flexseg, "--help", cwd=empty).stdout
    listed = run(flexseg, "experiments", cwd=empty).stdout
    assert {"demo", "nbm", "kneebones3dify"} <= {line.split()[0] for line in listed.splitlines() if line.strip()}

    small = ["image.width=32", "image.height=32", "model.num_layers=3", "train.epochs=1", "augment.copies=1"]
    demo = [flexseg, "demo", *[a for s in small for a in ("--set", s)]]
    first = subprocess.Popen(
        list(map(str, demo)), cwd=empty, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_for(lambda: (empty / "data" / "demo-raw" / ".flexseg-demo").exists(), proc=first)  # inside its lock
    second = subprocess.run(list(map(str, demo)), cwd=empty, capture_output=True, text=True, timeout=120)
    assert second.returncode == 4 and "in use by flexseg demo (pid" in second.stderr, second.stderr
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and "demo finished" in output, output
    assert (empty / "runs" / "demo" / "model.keras").is_file()
    assert len(list((empty / "runs" / "demo" / "mini_test_output").glob("*.png"))) == 8
    assert sorted(p.name for p in empty.iterdir()) == ["data", "runs"]  # all under the folder it was run in

    raw = empty / "data" / "demo-raw"
    (raw / "notes.txt").write_text("the user's notes")
    (raw / "mini_test" / "notes.txt").write_text("the user's too")

    def files(folder: Path) -> dict[str, str]:  # the demo's lock names its last holder: left out
        return {k: v for k, v in digest(folder).items() if not k.endswith(".flexseg-demo.lock")}

    before = files(raw)
    run(*demo, cwd=empty)
    assert files(raw) == before  # the same dataset again, the user's files untouched


def test_shipped_experiments_are_listed_and_copied_never_over_a_users_file(tmp_path):
    """`flexseg experiments` in a separate process: the list on stdout, a copy into ./experiments,
    the same copy again a no-op, a different file there refused (exit 4) and left as it was, an
    unknown name a usage error (exit 2); `demo --output` with an experiment of one's own refused."""
    from tests.robustness.test_processes import COMMAND

    def flexseg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*COMMAND, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    listed = flexseg("experiments")
    assert listed.returncode == 0 and listed.stdout.split()[0] == "demo-volumes", listed.stdout
    copied = flexseg("experiments", "nbm", "demo")
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "experiments" / "nbm.yaml").read_bytes() == (REPO / "experiments" / "nbm.yaml").read_bytes()
    assert "already there" in flexseg("experiments", "nbm").stderr
    mine = tmp_path / "experiments" / "demo.yaml"
    mine.write_text(mine.read_text() + "# my change\n")
    refused = flexseg("experiments", "demo", "nbm")
    assert refused.returncode == 4 and "differs" in refused.stderr and "Traceback" not in refused.stderr
    assert mine.read_text().endswith("# my change\n")
    unknown = flexseg("experiments", "nmb")
    assert unknown.returncode == 2 and "nbm" in unknown.stderr
    both = flexseg("demo", str(mine), "--output", str(tmp_path / "out"))
    assert both.returncode == 2 and "--output" in both.stderr and not (tmp_path / "out").exists()
