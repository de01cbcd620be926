"""PNG plots of the data, the pipeline and a run, drawn with matplotlib's object API (no pyplot:
headless, no global state).

Each `*_figure` function returns a `matplotlib.figure.Figure` whose Axes hold the plotted numbers
(bar heights, image arrays, line data), so a test or a notebook can read them back; `save_png`
writes one atomically (local or gs://). Axes carry a `gid` naming their panel.

| figure                        | shows                                                               | module         |
|-------------------------------|---------------------------------------------------------------------|----------------|
| `class_distribution_figure`   | rows per class (long tail, stacked by source), per fold, per source | `classes`      |
| `spectrogram_grid_figure`     | what the model sees: frontend images per class, clean and augmented | `spectrograms` |
| `audio_figure`                | a clip's waveform and spectrogram                                   | `spectrograms` |
| `history_figure`              | loss, metrics (train dashed, validation solid), learning rate       | `results`      |
| `scores_figure`               | per-class ROC-AUC, average precision, lwlrap; the worst classes     | `results`      |
| `timeline_figure`             | a soundscape's window predictions: classes over time                | `timeline`     |

`figures` holds the canvas, PNG and panel helpers they share.
"""

from birdtpu.plots.classes import class_counts, class_distribution_figure
from birdtpu.plots.figures import MAX_TICKS, axes, new_figure, png_bytes, save_png
from birdtpu.plots.results import (
    SCORE_COLUMNS,
    class_scores,
    history_figure,
    scores_figure,
    worst_classes,
)
from birdtpu.plots.spectrograms import (
    SpectrogramSheet,
    audio_figure,
    pipeline_spectrograms,
    spectrogram_grid_figure,
    spectrogram_rgb,
    stft_db,
)
from birdtpu.plots.timeline import soundscape_windows, split_row_ids, timeline_figure

__all__ = [
    "MAX_TICKS",
    "SCORE_COLUMNS",
    "SpectrogramSheet",
    "audio_figure",
    "axes",
    "class_counts",
    "class_distribution_figure",
    "class_scores",
    "history_figure",
    "new_figure",
    "pipeline_spectrograms",
    "png_bytes",
    "save_png",
    "scores_figure",
    "soundscape_windows",
    "spectrogram_grid_figure",
    "spectrogram_rgb",
    "split_row_ids",
    "stft_db",
    "timeline_figure",
    "worst_classes",
]
