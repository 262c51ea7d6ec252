"""The per-epoch history: CSVs rewritten after every epoch, plots redrawn at most every
``plot_every`` seconds and always at the end of training."""

from __future__ import annotations

from flexseg.training.callbacks import HistoryFiles


def test_csvs_every_epoch_plots_when_due_and_at_the_end(tmp_path):
    history = HistoryFiles(tmp_path, plot_every=3600)
    for epoch in range(3):
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0, "foreground_dice": 0.1 * epoch})
        assert len((tmp_path / "train_losses.csv").read_text().splitlines()) == epoch + 2
        assert not (tmp_path / "train_losses.png").exists()  # not due yet
    history.on_train_end()
    drawn = {name: (tmp_path / name).stat().st_mtime_ns for name in ("train_losses.png", "train_metrics.png")}
    history.on_train_end()  # nothing new to draw: the plots are left as they are
    assert drawn == {name: (tmp_path / name).stat().st_mtime_ns for name in drawn}

    every = HistoryFiles(tmp_path / "every", plot_every=0)
    (tmp_path / "every").mkdir()
    every.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert (tmp_path / "every" / "train_losses.png").stat().st_size > 0
    assert (tmp_path / "every" / "train_metrics.csv").read_text().splitlines()[0] == "epoch"


def test_the_losses_csv_holds_each_epochs_learning_rate_and_seconds(tmp_path):
    import csv
    import time

    history = HistoryFiles(tmp_path, plot_every=3600)
    for epoch in range(2):
        history.on_epoch_begin(epoch)
        time.sleep(0.05)
        history.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 2.0, "learning_rate": 1e-3 / (epoch + 1)})
    rows = list(csv.DictReader((tmp_path / "train_losses.csv").open()))
    assert [float(r["learning_rate"]) for r in rows] == [1e-3, 5e-4]
    assert all(0.05 <= float(r["seconds"]) < 5 for r in rows)
    assert "learning_rate" not in (tmp_path / "train_metrics.csv").read_text()
