"""report.html: the worst cases first with their errors drawn, rendered by a real headless browser
with the network off; `flexseg report` in a process of its own."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flexseg.report.cases import FALSE_NEGATIVE, FALSE_POSITIVE, WRONG_CLASS, CaseGallery, case_score, error_overlay
from tests.conftest import copy_of

FLEXSEG = Path(sys.executable).with_name("flexseg")
COMMAND = [str(FLEXSEG)] if FLEXSEG.exists() else [sys.executable, "-m", "flexseg.cli"]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def browser_or_skip() -> str:
    """The browser; CI (FLEXSEG_REQUIRE_BROWSER=1, set by .ci/run, which installs Chromium) fails without one."""
    if BROWSER is None:
        if os.environ.get("FLEXSEG_REQUIRE_BROWSER") == "1":
            pytest.fail("no Chromium: install it (apt-get install chromium; `make browser`)")
        pytest.skip("no Chromium on this machine (apt-get install chromium; `make browser`)")
    return BROWSER


def render(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran and its pictures loaded, in headless Chromium in a
    network namespace of its own (no network at all, where the kernel allows it), and the console
    lines it logged."""
    command = [
        browser_or_skip(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'browser-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        "--window-size=1280,4000",
        "--dump-dom",
        page.as_uri(),
    ]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:  # noqa: S603, S607
        command = ["unshare", "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".flexseg.lock"
    }


# ----------------------------------------------------------------- pictures


def test_errors_are_drawn_in_the_colour_blind_safe_colours_and_counted():
    image = np.full((4, 4, 3), 100, np.uint8)
    truth = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    pred = np.array([[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    overlay, missed, extra = error_overlay(image, truth, pred)
    assert (missed, extra) == (2, 2)  # (0,1) missed, (2,2) lesion taken for bone; (1,3) extra, and (2,2)

    def tint(y: int, x: int, colour: tuple[int, int, int]) -> bool:
        expected = 0.25 * 100 + 0.75 * np.asarray(colour)
        return bool(np.allclose(overlay[y, x], expected, atol=1))

    assert tint(0, 1, FALSE_NEGATIVE) and tint(1, 3, FALSE_POSITIVE) and tint(2, 2, WRONG_CLASS)
    assert (overlay[0, 0] == 100).all() and (overlay[3, 3] == 100).all()  # right pixels stay grey


def test_the_gallery_keeps_the_lowest_scores_worst_first(tmp_path):
    from flexseg.data.io import write_image

    rng = np.random.default_rng(0)
    truth = np.zeros((16, 16), np.uint8)
    truth[4:12, 4:12] = 1
    images, scores = {}, {}
    gallery = CaseGallery(images, ["background", "bone"], worst=3)
    for i in range(8):
        path = tmp_path / f"case {i}.png"
        write_image(path, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        images[path.name] = path
        pred = np.zeros_like(truth)
        pred[4 : 4 + i + 1, 4:12] = 1  # more of the square found as i grows
        scores[path.name] = case_score(truth, pred, 2)
        gallery.add(path.name, truth, pred)
    images["empty.png"] = tmp_path / "case 0.png"
    gallery.add("empty.png", np.zeros_like(truth), np.zeros_like(truth))
    index = gallery.write(tmp_path / "report")
    assert index.worst == sorted(scores, key=scores.get)[:3] == ["case 0.png", "case 1.png", "case 2.png"]
    assert [c.score for c in index.cases][-1] is None  # no foreground anywhere: no score, never "worst"
    assert len(index.cases) == 9 and all((tmp_path / c.thumbnail).is_file() for c in index.cases)
    panels = [c.panel for c in index.cases if c.panel]
    assert len(panels) == 3 and all((tmp_path / p).is_file() for p in panels)


# ----------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def evaluated(learned_project, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the shared small model, evaluated (which writes report.html): (experiment, run)."""
    from flexseg import api

    home = copy_of(learned_project, tmp_path_factory, "report")
    exp = home / "experiments" / "tiny.yaml"
    report = api.evaluate(exp)
    assert report.page == home / "runs" / "tiny" / "report.html"
    return exp, home / "runs" / "tiny"


def test_the_report_shows_the_worst_case_first_and_its_pictures_load_offline(evaluated, tmp_path):
    _, run = evaluated
    page = run / "report.html"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing from the network
    assert "default-src 'none'" in text  # and the page's policy forbids the browser to fetch any
    dom, console = render(page, tmp_path)
    assert console == []  # no error, nor anything else, in the console
    per_image = json.loads((run / "evaluation.json").read_text())["images"]
    cases = json.loads((run / "report" / "cases.json").read_text())
    lowest = min((c for c in cases["cases"] if c["score"] is not None), key=lambda c: c["score"])
    first = re.search(r'<article class="case" id="worst-1"><h3>1\. <a href="#case-(\d+)">([^<]+)</a>', dom)
    assert first and first.group(2) == lowest["name"]
    assert per_image[int(first.group(1))]["image"] == lowest["name"]  # its link goes to its own table row
    panels = re.findall(r'<img src="([^"]+)"[^>]*class="panel"[^>]*>', dom)
    states = re.findall(r'<img[^>]*class="panel"[^>]*data-state="(\w+)"', dom)
    assert len(panels) == len(cases["worst"]) == 8 and states == ["loaded"] * 8
    assert 'id="missing-pictures" hidden' in dom
    assert len(re.findall(r'<tr id="case-\d+">', dom)) == len(per_image) == 16


def test_a_report_moved_without_its_pictures_says_so(evaluated, tmp_path):
    _, run = evaluated
    alone = tmp_path / "usb" / "report.html"
    alone.parent.mkdir()
    shutil.copy(run / "report.html", alone)
    dom, console = render(alone, tmp_path)
    assert console == []
    assert 'data-state="missing"' in dom and 'id="missing-pictures" hidden' not in dom


def test_report_command_rewrites_the_page_keeps_the_pictures_and_never_a_foreign_page(evaluated, tmp_path):
    _, run = evaluated
    pictures = digest(run / "report")
    done = subprocess.run(  # noqa: S603
        [*COMMAND, "report", str(run)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert str(run / "report.html") in done.stderr
    assert digest(run / "report") == pictures
    dom, console = render(run / "report.html", tmp_path)
    assert console == [] and 'id="worst-1"' in dom

    mine = tmp_path / "mine"
    shutil.copytree(run, mine)
    (mine / ".flexseg-written").write_text(
        "\n".join(line for line in (mine / ".flexseg-written").read_text().splitlines() if "report.html" not in line)
        + "\n"
    )  # report.html is now the user's own file
    before = digest(mine)
    done = subprocess.run(  # noqa: S603
        [*COMMAND, "report", str(mine)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 4 and "was not written by flexseg" in done.stderr and "Traceback" not in done.stderr
    assert digest(mine) == before


def test_report_of_a_folder_that_is_no_run_is_a_named_error(tmp_path):
    done = subprocess.run(  # noqa: S603
        [*COMMAND, "report", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 4 and "not a run folder" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_case_index_is_a_named_run_error_and_changes_nothing(evaluated, tmp_path):
    _, run = evaluated
    mine = tmp_path / "damaged"
    shutil.copytree(run, mine)
    index = mine / "report" / "cases.json"
    index.write_text(index.read_text()[:40])
    before = digest(mine)
    done = subprocess.run([*COMMAND, "report", str(mine)], capture_output=True, text=True, timeout=120)  # noqa: S603
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 4 and len(errors) == 1, done.stderr
    assert "cases.json: not a readable flexseg case index" in errors[0] and "flexseg evaluate" in errors[0]
    assert "Traceback" not in done.stderr and digest(mine) == before


def test_volume_scores_get_their_spread_plots_and_a_row_a_volume(tmp_path):
    from flexseg.report.page import History, RunFacts, render

    volumes = [
        {"volume": f"v{i}.nii.gz", "dice_bone": 0.9 + i / 100, "nsd_bone": 0.95, "hd95_mm_bone": 1.0 + i}
        for i in range(2)
    ]
    facts = RunFacts(
        run_dir=tmp_path,
        card={"experiment": "x", "class_names": ["background", "bone"], "training": {}},
        environment=None,
        experiment=None,
        histories=[History("run")],
        evaluation={
            "images_scored": 0,
            "per_class": {"bone": {"dice": 0.9}},
            "images": [],
            "volumes_3d": {
                "volumes": volumes,
                "per_class": {"bone": {}},
                "foreground_dice": 0.905,
                "nsd_tolerance_mm": {"bone": 2.0},
            },
        },
        cases=None,
        postprocessing=None,
    )
    page = render(facts)
    assert "Scored in 3D: 2 volume(s)" in page and "tolerance bone 2.0 mm" in page
    assert "Dice over 2 volumes" in page and "HD95 (mm) over 2 volumes" in page
    assert page.count("<td>v0.nii.gz</td>") == 1 and page.count("<td>v1.nii.gz</td>") == 1
