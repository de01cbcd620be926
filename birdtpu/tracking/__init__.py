"""Experiment tracking: one interface over W&B (online, offline, disabled) and the local run folder.

`Tracker(cfg, run_dir)` is the only place in birdtpu that talks to wandb:

| call                      | local run folder                                  | W&B (online / offline)          |
|---------------------------|---------------------------------------------------|---------------------------------|
| `log_metrics(row)`        | a row of `history.csv` (a row at an epoch or step | `run.log(row)`                  |
|                           | replaces that one and the ones after it: resume)  |                                 |
| `log_image(name, png)`    | `plots/<name>.png`                                | `wandb.Image`                   |
| `log_table(name, df)`     | `tables/<name>.csv`, audio as WAV and images as   | `wandb.Table` with `wandb.Audio`|
|                           | PNG in `tables/<name>/`                           | and `wandb.Image` cells         |
| `finish(scores, model)`   | `model_card.md`                                   | summary, model artifact, finish |

With `tracking.wandb: disabled` wandb is never imported and nothing but the local files above
is written. Offline runs go to `<run_dir>/wandb/` (`wandb sync` uploads them later); the run id
is kept in `<run_dir>/wandb_id.txt` so a resumed online run continues the same W&B run. The
API key comes from `WANDB_API_KEY`, a Kaggle secret of that name, or `wandb login`; it is
passed to wandb in memory only, and never logged or written by birdtpu (nor is it in the
logged config).

| module    | holds                                                                     |
|-----------|---------------------------------------------------------------------------|
| `tracker` | `Tracker` and the W&B API key                                             |
| `cells`   | table cells that play or show: local files and W&B media                  |
| `clips`   | the worst validation clips table, clip audio read from shards             |
| `card`    | the model card                                                            |
"""

from birdtpu.tracking.card import model_card, write_model_card
from birdtpu.tracking.cells import AudioClip, Picture
from birdtpu.tracking.clips import shard_audio, worst_clips_table
from birdtpu.tracking.tracker import KEY_NAME, Tracker, wandb_key

__all__ = [
    "KEY_NAME",
    "AudioClip",
    "Picture",
    "Tracker",
    "model_card",
    "shard_audio",
    "wandb_key",
    "worst_clips_table",
    "write_model_card",
]
