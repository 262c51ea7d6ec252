"""report.html: one offline page of what a run did and what its model gets wrong, made from the
files in the run folder (no model, no TensorFlow).

Read: model.json, experiment.yaml, environment.json, train_losses.csv and train_metrics.csv (a
cross-validation: each fold's), evaluation.json, report/cases.json, postprocessing.json. What is
missing is said on the page, never an error: a run not yet evaluated gets a page of its training.
A damaged report/cases.json (the one file of these with a schema of the report's own) is a run
error naming it.
The pictures stay in report/ beside the page (lazy-loaded thumbnails: a 300-case test set opens at
once); no script, font or style comes from the network.
"""

from __future__ import annotations

import csv
import html
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from flexseg import __version__
from flexseg.report import charts
from flexseg.report.cases import (
    CASES_FILE,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    REPORT_ASSETS,
    WRONG_CLASS,
    CaseIndex,
    class_colour,
)

REPORT_FILE = "report.html"
SPLITS = ("train", "valid", "test")


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_csv(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class History:
    """One training's epochs (a run, or a fold of a cross-validation)."""

    name: str
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, name: str, folder: Path) -> History:
        losses = {r.get("epoch"): r for r in _read_csv(folder / "train_losses.csv")}
        for row in _read_csv(folder / "train_metrics.csv"):
            losses.setdefault(row.get("epoch"), {}).update(row)
        rows = [{k: _number(v) for k, v in r.items()} for r in losses.values()]
        return cls(name, [r for r in rows if r.get("epoch") is not None])

    def series(self, key: str) -> list[tuple[int, float | None]]:
        return [(int(r["epoch"]), r.get(key)) for r in self.rows]

    @property
    def seconds(self) -> float | None:
        values = [r.get("seconds") for r in self.rows]
        return sum(values) if values and all(v is not None for v in values) else None


@dataclass
class RunFacts:
    """What the page shows, read from a run folder."""

    run_dir: Path
    card: dict | None
    environment: dict | None
    experiment: object | None  # config.Experiment, when experiment.yaml loads
    histories: list[History]
    evaluation: dict | None
    cases: CaseIndex | None
    postprocessing: dict | None

    @classmethod
    def read(cls, run_dir: Path, cases: CaseIndex | None = None) -> RunFacts:
        """The facts of ``run_dir``; ``cases``: a new case index to show instead of the folder's."""
        folds = sorted(
            (p for p in run_dir.glob("fold_*") if p.is_dir() and p.name.removeprefix("fold_").isdigit()),
            key=lambda p: int(p.name.removeprefix("fold_")),
        )
        first = folds[0] if folds else run_dir
        histories = [History.read(p.name.replace("_", " "), p) for p in folds] or [History.read("run", run_dir)]
        cases_path = run_dir / REPORT_ASSETS / CASES_FILE
        if cases is None and cases_path.is_file():
            from flexseg.errors import RunError
            from flexseg.schema import read_json

            cases = read_json(
                cases_path, CaseIndex, what="flexseg case index", fix="run `flexseg evaluate` again", error=RunError
            )
        return cls(
            run_dir=run_dir,
            card=_read_json(first / "model.json"),
            environment=_read_json(first / "environment.json"),
            experiment=_experiment(run_dir / "experiment.yaml", first / "experiment.yaml"),
            histories=histories,
            evaluation=_read_json(run_dir / "evaluation.json"),
            cases=cases,
            postprocessing=_read_json(run_dir / "postprocessing.json"),
        )


def _experiment(*paths: Path) -> object | None:
    from flexseg.config import load_experiment
    from flexseg.errors import FlexsegError

    for path in paths:
        if path.is_file():
            try:
                return load_experiment(path, [])
            except (FlexsegError, OSError, ValueError):
                return None
    return None


def _split_counts(exp: object | None) -> dict[str, int | None]:
    from flexseg.data.io import list_images

    counts: dict[str, int | None] = {}
    for split in SPLITS:
        try:
            folder = exp.data.split_dir(split) / "images"  # type: ignore[union-attr]
            counts[split] = len(list_images(folder)) if folder.is_dir() else None
        except Exception:  # noqa: BLE001 (a count the page cannot give is shown as unknown)
            counts[split] = None
    return counts


# ------------------------------------------------------------------ rendering

e = html.escape


def _fmt(value: object, digits: int = 3) -> str:
    number = _number(value)
    if number is None:
        return "–"
    if isinstance(value, int) or abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def _training_summary(histories: list[History], training: dict) -> str:
    """Epochs, best epoch and time of a run; folds and their total time of a cross-validation."""
    times = [h.seconds for h in histories]
    took = f", {_duration(sum(times))}" if times and all(t is not None for t in times) else ""
    if len(histories) > 1:
        return f"{len(histories)} folds, {sum(len(h.rows) for h in histories)} epochs in all{took}"
    return (
        f"{_fmt(training.get('epochs_run'))} epochs{took}; best epoch {_fmt(training.get('best_epoch'))} "
        f"(val_loss {_fmt(training.get('best_val_loss'), 4)})"
    )


def _glance(facts: RunFacts) -> str:
    card, env, exp, ev = facts.card or {}, facts.environment or {}, facts.experiment, facts.evaluation or {}
    training = card.get("training", {}) if isinstance(card.get("training"), dict) else {}
    counts = _split_counts(exp)
    rows = [
        ("experiment", card.get("experiment") or getattr(exp, "name", None) or "–"),
        ("classes", ", ".join(card.get("class_names", [])) or "–"),
        (
            "images per split" + (" (fold 0)" if len(facts.histories) > 1 else ""),
            ", ".join(f"{s} {counts[s] if counts[s] is not None else '?'}" for s in SPLITS),
        ),
        ("model input", f"{card.get('width', '?')}×{card.get('height', '?')}, {card.get('channels', '?')} channel(s)"),
        ("parameters", _fmt(training.get("parameters"))),
        ("precision", training.get("precision") or env.get("precision") or "–"),
        ("training", _training_summary(facts.histories, training)),
        (
            "test score",
            f"foreground Dice {_fmt(ev.get('foreground_dice'))} over {_fmt(ev.get('images_scored'))} images"
            if ev
            else "not evaluated yet: run `flexseg evaluate` on the experiment",
        ),
        ("trained with", " ".join(env.get("command", [])) or "–"),
        ("machine", f"{env.get('platform', '–')}, {env.get('cpu_count', '?')} CPUs"),
        ("this page", f"made {time.strftime('%Y-%m-%d %H:%M')} by flexseg {__version__}: {' '.join(sys.argv)}"),
    ]
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in rows)
    return f'<section id="glance"><h2>The run at a glance</h2><dl class="facts">{items}</dl></section>'


def _folds(facts: RunFacts) -> str:
    cv = (facts.evaluation or {}).get("cross_validation")
    if not cv:
        return ""
    rows = "".join(
        f"<tr><td>fold {e(str(f.get('fold')))}</td><td>{_fmt(f.get('out_of_fold', {}).get('foreground_dice'))}</td>"
        f"<td>{_fmt(f.get('test', {}).get('foreground_dice'))}</td></tr>"
        for f in cv.get("folds", [])
    )
    pooled = cv.get("out_of_fold_pooled", {}).get("foreground_dice")
    plain = cv.get("ensemble_test_without_postprocessing", {}).get("foreground_dice")
    final = cv.get("ensemble_test", {}).get("foreground_dice")
    return (
        '<section id="folds"><h2>Cross-validation</h2>'
        "<p>Each fold's model on its own validation images (out of fold) and alone on the test split; "
        "the ensemble averages the folds' probabilities.</p>"
        '<div class="scroll"><table class="numbers"><thead><tr><th>model</th><th>foreground Dice, out of fold</th>'
        f"<th>foreground Dice, test</th></tr></thead><tbody>{rows}"
        f"<tr><td>all folds pooled</td><td>{_fmt(pooled)}</td><td></td></tr>"
        f"<tr><td>ensemble, no post-processing</td><td></td><td>{_fmt(plain)}</td></tr>"
        f"<tr class='total'><td>ensemble</td><td></td><td>{_fmt(final)}</td></tr></tbody></table></div></section>"
    )


def _training(facts: RunFacts) -> str:
    histories = [h for h in facts.histories if h.rows]
    if not histories:
        return '<section id="training"><h2>Training</h2><p>No training history in this run folder.</p></section>'
    one = len(histories) == 1
    if one:
        h = histories[0]
        charts_svg = [
            charts.curves({"train": h.series("loss"), "validation": h.series("val_loss")}, "loss", "loss"),
            charts.curves(
                {"train": h.series("foreground_dice"), "validation": h.series("val_foreground_dice")},
                "foreground Dice",
                "Dice",
            ),
        ]
        if len({v for _, v in h.series("learning_rate") if v is not None}) > 1:  # a flat line says nothing
            charts_svg.append(
                charts.curves({"learning rate": h.series("learning_rate")}, "learning rate", "rate", log=True)
            )
    else:
        charts_svg = [
            charts.curves({h.name: h.series("val_loss") for h in histories}, "validation loss per fold", "loss"),
            charts.curves(
                {h.name: h.series("val_foreground_dice") for h in histories},
                "validation foreground Dice per fold",
                "Dice",
            ),
        ]
        if len({v for h in histories for _, v in h.series("learning_rate") if v is not None}) > 1:
            charts_svg.append(
                charts.curves({h.name: h.series("learning_rate") for h in histories}, "learning rate", "rate", log=True)
            )
    figures = "".join(f'<figure class="chart">{svg}</figure>' for svg in charts_svg)
    rates = {v for h in histories for _, v in h.series("learning_rate") if v is not None}
    steady = f"<p>Learning rate {rates.pop():g} throughout (never reduced).</p>" if len(rates) == 1 else ""
    return f'<section id="training"><h2>Training</h2><div class="charts">{figures}</div>{steady}</section>'


METRIC_LABELS = {
    "dice": "Dice",
    "iou": "IoU",
    "precision": "precision",
    "recall": "recall",
    "hd95": "HD95",
    "nsd": "NSD",
    "volume_ml": "volume ml",
}


def _metrics(facts: RunFacts) -> str:
    ev = facts.evaluation
    if not ev:
        return ""
    per_class: dict = ev.get("per_class", {})
    images: list = ev.get("images", [])
    unit = ev.get("hd95_unit", "pixels")
    metrics = [m for m in ("dice", "iou", "precision", "recall", "hd95") if any(m in v for v in per_class.values())]
    head = "".join(f"<th>{e(METRIC_LABELS[m])}{' (' + e(unit) + ')' if m == 'hd95' else ''}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{_swatch(name, list(per_class))} {e(name)}</td>"
        + "".join(f"<td>{_fmt(values.get(m))}</td>" for m in metrics)
        + f"<td>{_fmt(values.get('dice_pooled'))}</td></tr>"
        for name, values in per_class.items()
    )
    classes = list(per_class)
    plots = []
    for metric, label in (("dice", "Dice"), ("iou", "IoU"), ("hd95", f"HD95 ({unit})")):
        values = {name: [_number(r.get(f"{metric}_{name}")) for r in images] for name in classes}
        if any(v is not None for vs in values.values() for v in vs):
            plots.append(charts.spread(values, f"{label} over {len(images)} images", label, _all_classes(facts)))
    volumes = _volumes(ev.get("volumes_3d"), _all_classes(facts))
    return (
        '<section id="metrics"><h2>Scores per class</h2>'
        "<p>Means over the test images (a class absent from both truth and prediction is left out of its "
        "mean); pooled Dice sums every image's pixels first. The plots show every image as a dot.</p>"
        f'<div class="scroll"><table class="numbers"><thead><tr><th>class</th>{head}<th>Dice pooled</th></tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
        f'<div class="charts">{"".join(f"<figure class=chart>{p}</figure>" for p in plots)}</div>{volumes}</section>'
    )


def _all_classes(facts: RunFacts) -> list[str]:
    return list((facts.card or {}).get("class_names", [])) or [
        "background",
        *(facts.evaluation or {}).get("per_class", {}),
    ]


def _swatch(name: str, foreground: list[str]) -> str:
    colour = class_colour(foreground.index(name) + 1) if name in foreground else (128, 128, 128)
    return f'<span class="swatch" style="background:rgb{colour}" aria-hidden="true"></span>'


VOLUME_PLOTS = (("dice", "Dice"), ("nsd", "NSD"), ("hd95_mm", "HD95 (mm)"), ("volume_rel_diff", "volume error"))


def _volumes(report: dict | None, all_classes: list[str]) -> str:
    """The 3D scores of the test volumes: their spread as plots, and a table of every volume."""
    if not report or not report.get("volumes"):
        return ""
    volumes: list = report["volumes"]
    classes = list(report.get("per_class", {}))
    plots = []
    for metric, label in VOLUME_PLOTS:
        values = {name: [_number(v.get(f"{metric}_{name}")) for v in volumes] for name in classes}
        if any(x is not None for xs in values.values() for x in xs):
            plots.append(charts.spread(values, f"{label} over {len(volumes)} volumes", label, all_classes))
    figures = "".join(f"<figure class=chart>{p}</figure>" for p in plots)
    keys = [k for k in volumes[0] if k not in ("volume", "spacing_mm", "slices")]
    head = "".join(f"<th>{e(k.replace('_', ' '))}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{e(str(v.get('volume', '?')))}</td>" + "".join(f"<td>{_fmt(v.get(k))}</td>" for k in keys) + "</tr>"
        for v in volumes
    )
    return (
        f"<h3>Scored in 3D: {len(volumes)} volume(s)</h3>"
        f"<p>Foreground Dice {_fmt(report.get('foreground_dice'))}, NSD {_fmt(report.get('foreground_nsd'))} "
        f"(tolerance {e(_tolerance(report.get('nsd_tolerance_mm')))}); HD95 in mm; volume error relative to the "
        f'truth\'s volume.</p><div class="charts">{figures}</div>'
        f'<div class="scroll"><table class="numbers sortable"><thead><tr><th>volume</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _tolerance(value: object) -> str:
    """NSD's tolerance: one number, or one a class (``{"bone": 2.0}``), in mm."""
    if isinstance(value, dict):
        return ", ".join(f"{name} {_fmt(mm, 1)} mm" for name, mm in value.items())
    return f"{_fmt(value, 1)} mm"


def _legend() -> str:
    items = [
        (FALSE_NEGATIVE, "missed: truth the model did not find (false negative)"),
        (FALSE_POSITIVE, "extra: found where the truth has none (false positive)"),
        (WRONG_CLASS, "one class taken for another"),
    ]
    return (
        '<ul class="legend">'
        + "".join(
            f'<li><span class="swatch" style="background:rgb{c}" aria-hidden="true"></span>{e(t)}</li>'
            for c, t in items
        )
        + "</ul>"
    )


def _worst(facts: RunFacts) -> str:
    if facts.cases is None:
        if facts.evaluation:
            return (
                '<section id="worst"><h2>Worst cases</h2><p>No pictures: this evaluation was made before '
                "flexseg drew them. Run <code>flexseg evaluate</code> again.</p></section>"
            )
        return ""
    by_name = {c.name: (i, c) for i, c in enumerate(facts.cases.cases)}
    cards = []
    for rank, name in enumerate(facts.cases.worst, 1):
        i, case = by_name[name]
        cards.append(
            f'<article class="case" id="worst-{rank}"><h3>{rank}. <a href="#case-{i}">{e(name)}</a></h3>'
            f"<p>foreground Dice <strong>{_fmt(case.score)}</strong>; missed {case.false_negative_pixels:,} px, "
            f"extra {case.false_positive_pixels:,} px</p>"
            '<div class="tiles" aria-hidden="true"><span>image</span><span>truth</span><span>prediction</span>'
            "<span>errors</span></div>"
            f'<img src="{e(case.panel or case.thumbnail)}" alt="{e(name)}: image, truth, prediction, errors" '
            'class="panel" decoding="async"></article>'
        )
    classes = facts.cases.class_names
    class_legend = " ".join(f"{_swatch(n, classes[1:])} {e(n)}" for n in classes[1:])
    return (
        f'<section id="worst"><h2>Worst cases first</h2><p>The {len(cards)} test images with the lowest foreground '
        f"Dice. Each: the image, the truth ({class_legend}), the prediction, and the errors:</p>{_legend()}"
        f"{''.join(cards) or '<p>No case has any foreground to score.</p>'}</section>"
    )


def _cases(facts: RunFacts) -> str:
    ev = facts.evaluation
    if not ev or not ev.get("images"):
        return ""
    images: list = ev["images"]
    classes = list(ev.get("per_class", {}))
    pictures = {c.name: c for c in facts.cases.cases} if facts.cases else {}
    columns = ["dice", "hd95"]
    head = "".join(f"<th data-type=number>{e(METRIC_LABELS[m])} {e(c)}</th>" for c in classes for m in columns)
    rows = []
    for i, row in enumerate(images):
        name = str(row.get("image", i))
        case = pictures.get(name)
        thumb = (
            f'<img src="{e(case.thumbnail)}" alt="" width="48" height="48" loading="lazy" decoding="async">'
            if case
            else ""
        )
        score = case.score if case else None
        cells = "".join(
            f'<td data-value="{_number(row.get(f"{m}_{c}")) if _number(row.get(f"{m}_{c}")) is not None else ""}">'
            f"{_fmt(row.get(f'{m}_{c}'))}</td>"
            for c in classes
            for m in columns
        )
        rows.append(
            f'<tr id="case-{i}"><td>{thumb}</td><td class="name">{e(name)}</td>'
            f'<td data-value="{"" if score is None else score}">{_fmt(score)}</td>{cells}</tr>'
        )
    return (
        f'<section id="cases"><h2>Every case ({len(images)})</h2><p>Click a column to sort by it.</p>'
        '<div class="scroll"><table class="numbers sortable" id="case-table"><thead><tr><th data-type=none></th>'
        f'<th data-type=text class="text">image</th><th data-type=number>foreground Dice</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _postprocessing(facts: RunFacts) -> str:
    decision = facts.postprocessing
    if not decision:
        return ""
    cv = (facts.evaluation or {}).get("cross_validation") or {}
    before = cv.get("ensemble_test_without_postprocessing", {}).get("foreground_dice")
    after = cv.get("ensemble_test", {}).get("foreground_dice")
    shown = {k: v for k, v in decision.items() if k != "tried"}
    items = "".join(f"<dt>{e(str(k).replace('_', ' '))}</dt><dd>{e(json.dumps(v))}</dd>" for k, v in shown.items())
    change = (
        f"<p>On the test split it took the ensemble's foreground Dice from {_fmt(before)} to {_fmt(after)}.</p>"
        if before is not None and after is not None
        else ""
    )
    return (
        '<section id="postprocessing"><h2>Post-processing</h2><p>Chosen on the pooled out-of-fold predictions '
        f'(kept only where it raised their Dice):</p><dl class="facts">{items}</dl>{change}</section>'
    )


STYLE = """
:root{--ink:#1b1b1b;--muted:#5a5a5a;--line:#d8d8d8;--bg:#fff;--band:#f5f6f8;--link:#005a9c}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}header,main{max-width:1380px;margin:0 auto;padding:0 20px}
header{padding-top:18px}h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .5em;
border-bottom:1px solid var(--line);padding-bottom:.2em}h3{font-size:1em;margin:.3em 0}a{color:var(--link)}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:.4em 0 0;font-size:.95em}.muted{color:var(--muted)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0}dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;max-width:100%}figure.chart svg{max-width:100%;height:auto}
table{border-collapse:collapse}td,th{padding:3px 9px;border-bottom:1px solid var(--line);text-align:right}
td:first-child,th:first-child,td.name{text-align:left}th{background:var(--band);position:sticky;top:0}
table.sortable th[data-type=number],table.sortable th[data-type=text]{cursor:pointer}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}table.sortable th[aria-sort=descending]::after{content:" ▼"}
tr.total td{font-weight:600}tr:target td{background:#fff3c4}.scroll{overflow-x:auto;max-width:100%}
td.name{overflow-wrap:anywhere;max-width:26em}article.case{margin:0 0 18px;max-width:1302px}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:6px;color:var(--muted);font-size:.9em}
th.text{text-align:left}
img.panel{max-width:100%;height:auto;border:1px solid var(--line)}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #555;vertical-align:-.1em;margin-right:.3em}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 18px}
#missing-pictures{background:#fde7e7;border:1px solid #d55e00;padding:6px 10px}
@media (max-width:700px){body{font-size:14px}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:6px}}
"""

SCRIPT = """
(function(){
  function value(cell, type){
    if(type==='number'){var v=cell.getAttribute('data-value');return v===null||v===''?NaN:parseFloat(v);}
    return cell.textContent.trim().toLowerCase();
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th, col){
      var type=th.getAttribute('data-type')||'number';
      if(type==='none')return;
      th.tabIndex=0;
      function sort(){
        var ascending=th.getAttribute('aria-sort')!=='ascending';
        table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort', ascending?'ascending':'descending');
        var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=value(a.cells[col],type), y=value(b.cells[col],type);
          if(type==='number'){ if(isNaN(x))return 1; if(isNaN(y))return -1; return ascending?x-y:y-x; }
          return ascending?(x<y?-1:x>y?1:0):(x<y?1:x>y?-1:0);
        });
        rows.forEach(function(r){body.appendChild(r);});
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function(ev){ if(ev.key==='Enter'||ev.key===' '){ev.preventDefault();sort();} });
    });
  });
  function missing(img){
    img.setAttribute('data-state','missing');
    document.getElementById('missing-pictures').hidden=false;
  }
  document.querySelectorAll('img').forEach(function(img){
    img.addEventListener('load', function(){img.setAttribute('data-state','loaded');});
    img.addEventListener('error', function(){missing(img);});
    if(!img.complete)return;
    if(img.naturalWidth>0){img.setAttribute('data-state','loaded');} else if(img.loading!=='lazy'){missing(img);}
  });
})();
"""


def render(facts: RunFacts) -> str:
    """The page's HTML."""
    title = f"flexseg report: {(facts.card or {}).get('experiment') or facts.run_dir.name}"
    sections = [
        _glance(facts),
        _folds(facts),
        _training(facts),
        _metrics(facts),
        _worst(facts),
        _cases(facts),
        _postprocessing(facts),
    ]
    present = [
        (anchor, label)
        for anchor, label in (
            ("glance", "at a glance"),
            ("folds", "cross-validation"),
            ("training", "training"),
            ("metrics", "scores"),
            ("worst", "worst cases"),
            ("cases", "every case"),
            ("postprocessing", "post-processing"),
        )
        if any(f'<section id="{anchor}"' in s for s in sections)
    ]
    nav = "".join(f'<a href="#{a}">{e(label)}</a>' for a, label in present)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{e(title)}</h1><p class="muted">{e(str(facts.run_dir))}</p><nav>{nav}</nav>'
        '<p id="missing-pictures" hidden>Some pictures are missing: keep the <code>report</code> folder beside '
        "report.html when you copy or move it.</p></header>"
        f"<main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n"
    )
