"""Competition metadata read into one canonical table; merging, de-duplication, corrupt files.

Canonical columns (one row per recording, or per labelled segment for Rainforest Connection):

- `filepath`: where the audio is (absolute path or URL); `filename`: the same, relative to the
  audio folder of its source.
- `label`: the primary label; `labels`: every label (a list, primary first, then secondary);
  `other_labels`: labels named in the metadata that have no class code (Cornell / Xeno-Canto
  secondary species outside the set), kept for reference and never in targets.
- `source` (the format name, e.g. `birdclef2024`), `xc_id` (`XC123456` or missing), `author`,
  `rating`, `duration` (seconds, where the metadata or an audio check knows it), `latitude`,
  `longitude`.
- Rainforest boxes `t_min`, `t_max` (seconds), `f_min`, `f_max` (Hz), `songtype`; `positive` is
  False for `train_fp.csv` rows (verified absence of their label), True elsewhere.

Readers are vectorised (pandas string operations; each distinct label-list string is parsed once),
and rows that share a label set share one `labels` list object: never mutate one in place.
Errors name the metadata file and the row, counting the header as row 1 (as a spreadsheet does).

Bad rows: a row with an empty label or file name, a malformed label list, a path outside the data
root, a bad box, a repeat of an earlier row's file, or (with `classes`) a primary label outside the
class list is one bad row of many. Readers given a `bad_rows` list skip such rows and append a
table of them (columns DROPPED, the reason a short kind, the detail naming file and row); without
one, the first bad row is a DataError. A file whose every row is bad, or that lacks a required
column or is not a CSV, is always a DataError. A secondary label outside `classes` is no bad row:
it moves to `other_labels`, like Cornell species without a code.

Modules: `columns` (the canonical schema, label lists), `rows` (row checks shared by readers),
`birdclef` (BirdCLEF / Cornell / Xeno-Canto readers), `tagging` (Freesound 2019, Rainforest),
`sources` (formats by name; their layouts in `birdtpu.data.layouts`), `merge` (merging,
de-duplication, corrupt lists), `probe` (audio checks, missing files), `labels` (class lists and
target matrices), `table` (the parquet/CSV table on disk).
"""

from birdtpu.data.catalog.birdclef import read_birdclef, read_cornell, read_xc_extended
from birdtpu.data.catalog.columns import BOXES, CANONICAL, DROPPED, LIST_COLUMNS, parse_label_list
from birdtpu.data.catalog.labels import label_map, targets
from birdtpu.data.catalog.merge import (
    deduplicate,
    drop_listed,
    dropped_rows,
    exclude_recordings,
    merge,
    no_drops,
    read_corrupt_list,
    skip_summary,
)
from birdtpu.data.catalog.probe import drop_unusable, missing_files, missing_warning, probe_audio
from birdtpu.data.catalog.rows import safe_join
from birdtpu.data.catalog.sources import FORMATS, read_class_list, read_source
from birdtpu.data.catalog.table import read_table, write_table
from birdtpu.data.catalog.tagging import read_fat2019, read_rainforest

__all__ = [
    "BOXES",
    "CANONICAL",
    "DROPPED",
    "FORMATS",
    "LIST_COLUMNS",
    "deduplicate",
    "drop_listed",
    "drop_unusable",
    "dropped_rows",
    "exclude_recordings",
    "label_map",
    "merge",
    "missing_files",
    "missing_warning",
    "no_drops",
    "parse_label_list",
    "probe_audio",
    "read_birdclef",
    "read_class_list",
    "read_cornell",
    "read_corrupt_list",
    "read_fat2019",
    "read_rainforest",
    "read_source",
    "read_table",
    "read_xc_extended",
    "safe_join",
    "skip_summary",
    "targets",
    "write_table",
]
