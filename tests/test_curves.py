"""curves.png (zoo/plots.py): matplotlib without pyplot, a panel per quantity, the learning rate
from history.csv, empty cells and single epochs, the best epoch of the main metric."""
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

import zoo
from conftest import history_rows, tiny
from zoo.optim import build_schedule
from zoo.plots import PANEL_PIXELS, best_epoch, panels, read_history, save_curves

# A detection-like history: val_* every second epoch (empty cells between), a COCO size range
# with no object (-1 throughout), the epoch time and the learning rate.
DETECTION_HISTORY = """\
epoch,box_loss,loss,epoch_seconds,val_box_loss,val_loss,val_mAP,val_mAP50,val_mAP_large,learning_rate
1,0.47,1.54,1.3,,,,,,0.00096
2,0.33,1.15,1.9,0.32,1.04,0.010,0.042,-1.0,0.00079
3,0.30,1.01,0.7,,,,,,0.00053
4,0.27,0.93,0.6,0.29,0.95,0.022,0.063,-1.0,0.00027
5,0.24,0.86,0.2,,,,,,0.00007
6,0.23,0.83,0.5,0.28,0.92,0.022,0.064,-1.0,0.0
"""


def write(tmp_path, text, name="history.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def png_size(path):
    with Image.open(path) as image:
        return image.size


def test_best_epoch_is_the_first_highest_value_and_skips_empty_cells():
    assert best_epoch([1, 2, 3, 4, 5], [None, 0.5, None, 0.7, 0.7]) == (4, 0.7)  # as best.keras keeps it
    assert best_epoch([1, 2, 3], [0.9, 0.3, None]) == (1, 0.9)
    assert best_epoch([1, 2], [None, None]) is None


def test_history_epochs_are_plotted_as_written(tmp_path):
    epochs, columns = read_history(write(tmp_path, DETECTION_HISTORY))
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert columns["val_mAP"] == [None, 0.010, None, 0.022, None, 0.022]
    epochs, _ = read_history(write(tmp_path, "epoch,loss\n0,2.0\n1,1.0\n"))
    assert epochs == [0, 1]  # an older run's history, counted from 0: left as it is
    epochs, columns = read_history(write(tmp_path, "loss,val_loss\n2.0,2.5\n1.0,nan\n"))
    assert epochs == [1, 2] and columns["val_loss"] == [2.5, None]


def test_panels_pair_train_and_validation_and_put_the_learning_rate_last(tmp_path):
    _, columns = read_history(write(tmp_path, DETECTION_HISTORY))
    assert panels(columns, "mAP") == [("loss", ["loss", "val_loss"]), ("box_loss", ["box_loss", "val_box_loss"]),
                                      ("mAP", ["val_mAP"]), ("mAP50", ["val_mAP50"]),
                                      ("learning rate", ["learning_rate"])]
    _, columns = read_history(write(tmp_path, "epoch,accuracy,loss,val_accuracy,val_loss\n1,0.5,1.0,0.6,0.9\n"))
    assert panels(columns, "accuracy") == [("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"])]


def test_curves_png_without_pyplot_and_with_empty_cells(tmp_path):
    """A fresh process where importing pyplot fails: `import zoo` loads no matplotlib, and drawing
    needs no pyplot. (Keras imports pyplot itself where it can: `keras.visualization`.)"""
    history = write(tmp_path, DETECTION_HISTORY)
    script = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        sys.modules["matplotlib.pyplot"] = None  # `import matplotlib.pyplot` raises ImportError
        import zoo
        assert "matplotlib" not in sys.modules
        from zoo.plots import save_curves
        save_curves(Path({str(history)!r}), Path({str(tmp_path / "curves.png")!r}), "mAP")
        print("matplotlib.backends.backend_agg" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # drawn by Agg
    # 5 panels (loss, box_loss, mAP, mAP50, learning rate), 3 across, 2 down.
    assert png_size(tmp_path / "curves.png") == (3 * PANEL_PIXELS[0], 2 * PANEL_PIXELS[1])
    assert not (tmp_path / "curves.png.tmp").exists()  # written atomically


def test_curves_leave_a_users_pyplot_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    figure = plt.figure()
    try:
        save_curves(write(tmp_path, DETECTION_HISTORY), tmp_path / "curves.png", "mAP")
        assert plt.get_fignums() == [figure.number] and plt.gcf() is figure
        assert matplotlib.get_backend() == backend
    finally:
        plt.close(figure)


@pytest.mark.parametrize("text, main, size", [
    ("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate\n1,2.1,0.3,1.3,0.8,0.003\n", "accuracy", (3, 1)),
    ("epoch,loss\n1,2.1\n", None, (1, 1)),  # train.validate false: no best epoch to mark
    ("epoch,loss,val_mIoU\n1,-0.5,\n2,-0.7,0.4\n", "mIoU", (2, 1)),  # a negative loss: a linear axis
])
def test_single_epoch_and_small_histories_draw(tmp_path, text, main, size):
    save_curves(write(tmp_path, text), tmp_path / "curves.png", main)
    assert png_size(tmp_path / "curves.png") == (size[0] * PANEL_PIXELS[0], size[1] * PANEL_PIXELS[1])


def test_a_training_run_logs_the_learning_rate_and_draws_it(tmp_path):
    recipe = tiny("digits_cnn", "train.epochs=3")
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    rows = history_rows(run.output_dir)
    steps = int(run.model.optimizer.iterations.numpy()) // 3
    schedule = build_schedule(recipe.train, steps)  # the rate after each epoch, as the log's `lr`
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx(
        [float(schedule(epoch * steps)) for epoch in (1, 2, 3)])
    _, columns = read_history(run.output_dir / "history.csv")
    assert [name for name, _ in panels(columns, "accuracy")] == ["loss", "accuracy", "top5_accuracy",
                                                                 "learning rate"]
    assert png_size(run.output_dir / "curves.png") == (2 * PANEL_PIXELS[0], 2 * PANEL_PIXELS[1])
