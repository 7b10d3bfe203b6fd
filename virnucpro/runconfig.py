"""What decides a run's outputs: the options of ``virnucpro run`` as one value, shared by the runner and the job
planner so neither has to import the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SHARD_PREFIX = "shard"
#: Shard size when neither --shards nor --tokens-per-shard is given: ~47K frames of 500 bp (168 ESM-2 tokens each),
#: about 1.5 min of ESM-2 3B on an H100 at 85K tokens/s. Small enough to share out over GPUs and to resume cheaply,
#: big enough that per-shard overheads (model warm-up, file open/commit) do not matter.
DEFAULT_TOKENS_PER_SHARD = 8_000_000


@dataclass
class RunConfig:
    """Everything that decides the outputs of a run (and so what a resumed run may reuse)."""

    inputs: list[Path]
    outdir: Path
    chunk_length: int
    dnabert: str
    esm: str
    classifier: Path
    n_shards: int | None = None
    tokens_per_shard: int | None = None
    tokens_per_batch_dna: int | None = None
    tokens_per_batch_protein: int | None = None
    store_dtype: str = "float32"
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    allow_chunk_mismatch: bool = False  # use a published classifier with the other chunk length anyway
    workers: int | None = None  # tokenisation threads per embedding worker (None: one per core, at most 8)
    compile: bool = False  # torch.compile the encoder layers (same results within float tolerance; not in stamps)
    devices: list[str] = field(default_factory=list)  # filled by plan_devices()
    command_line: list[str] = field(default_factory=list)  # as typed, for run.log and manifest.json

    def __post_init__(self) -> None:
        # Many shards by default: per-shard memory stays bounded whatever the input size, and a work queue over
        # several GPUs has something to share out. Shards are cut by ESM-2 tokens (see prepare).
        if self.n_shards is None and self.tokens_per_shard is None:
            self.tokens_per_shard = DEFAULT_TOKENS_PER_SHARD


