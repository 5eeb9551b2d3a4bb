import numpy as np
import pytest
from matplotlib.image import imread

from astrosnn.errors import AstrosnnError
from astrosnn.viz.nalsm import plot_branching, plot_learning_curves, plot_raster


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def test_raster_with_astrocyte_trace(tmp_path):
    rng = np.random.default_rng(0)
    spikes = rng.random((250, 40)) < 0.05
    out = plot_raster(spikes, np.linspace(0.15, 0.3, 250), tmp_path / "r.png", n_exc=24, n_liquid=30)
    assert out.exists() and _is_png(out)
    h, w = imread(out).shape[:2]
    assert h > w / 2  # two stacked panels: taller than a single strip
    with pytest.raises(AstrosnnError, match="steps"):
        plot_raster(spikes, np.zeros(10), tmp_path / "bad.png", n_exc=24, n_liquid=30)
    assert not (tmp_path / "bad.png").exists()


def test_branching_and_learning_curves(tmp_path):
    b = plot_branching([1.2, np.nan, 1.3], tmp_path / "b.png", references={"paper": 1.25})
    c = plot_learning_curves({"train_accuracy": [0.2, 0.6, 0.9], "val_accuracy": [0.2, 0.5, 0.8],
                              "test_accuracy": [0.1, 0.5, 0.7], "loss": [2.0, 1.0, 0.5], "best_epoch": 2},
                             tmp_path / "c.png")
    for p in (b, c):
        assert _is_png(p) and imread(p).ndim == 3
