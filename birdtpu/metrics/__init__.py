"""Competition metrics: NumPy scores, prediction tables, and streaming Keras metrics."""

from birdtpu.metrics.scores import (  # noqa: F401
    METRICS,
    lrap,
    lwlrap,
    lwlrap_per_class,
    macro_pr_auc,
    macro_roc_auc,
    padded_cmap,
    per_class_average_precision,
    per_class_roc_auc,
    top_k_accuracy,
)
from birdtpu.metrics.tables import (  # noqa: F401
    ROW_ID,
    align_tables,
    birdclef2024_score,
    check_table,
    file_level,
    read_table,
)
