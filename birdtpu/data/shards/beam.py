"""The shard build as an Apache Beam pipeline, for sets that outgrow one machine (`shard --runner beam`).

The driver plans, resumes and writes the manifest exactly as the local build does
(`build.build_shards`); only the writing of the shards is the pipeline:

    plans of the shards left to write | Reshuffle | write_shard (decode its recordings, write,
    sidecar)

A shard is the unit of work (as a worker's task is in the local build), so a pipeline spreads over
at most as many workers as there are shards left: lower `shards.target_mb` for more. The same
`write_shard` writes every shard, so shards, sidecars and manifest equal the local build's byte
for byte. After the pipeline the driver reads each shard's entry back from its sidecar, so any
runner works, given `out_dir` on storage every worker and the driver reach (`gs://` on Dataflow).

`options` are Beam pipeline options (`--runner=...`, `--project=...`); without a `--runner`, the
DirectRunner runs the pipeline here in `workers` processes. Beam is the optional extra `[beam]`.
"""

from __future__ import annotations

from birdtpu.data.shards.plan import ShardPlan, WriteOptions
from birdtpu.data.shards.write import write_shard
from birdtpu.errors import ConfigError

INSTALL = "pip install 'birdtpu[beam]' (its tested pins: constraints-beam.txt)"


def _beam():
    try:
        import apache_beam
    except ImportError:
        raise ConfigError(f"shard --runner beam needs Apache Beam: {INSTALL}") from None
    return apache_beam


def pipeline_options(options: list[str], workers: int) -> list[str]:
    """`options`, with the DirectRunner in `workers` processes where no runner is named."""
    if any(o.startswith("--runner") for o in options):
        return list(options)
    return [
        "--runner=DirectRunner",
        f"--direct_num_workers={max(1, workers)}",
        "--direct_running_mode=multi_processing"
        if workers > 1
        else "--direct_running_mode=in_memory",
        *options,
    ]


def _write(plan: ShardPlan, out_dir: str, options: WriteOptions) -> str:
    return write_shard(plan, out_dir, options)["file"]


def write_with_beam(
    plans: list[ShardPlan], out_dir: str, options: WriteOptions, workers: int, beam_options
) -> None:
    """Write `plans` into `out_dir` with a Beam pipeline; returns when every shard is written."""
    beam = _beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    opts = PipelineOptions(pipeline_options(list(beam_options), workers or 1))
    with beam.Pipeline(options=opts) as pipeline:
        (
            pipeline
            | "plans" >> beam.Create(plans)
            | "spread" >> beam.Reshuffle()
            | "write shards" >> beam.Map(_write, out_dir, options)
        )
