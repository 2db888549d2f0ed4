"""The contamination stage of building a set: its dialogues checked against the benchmark's own lines
(:mod:`erc.data.contamination`), and those carrying a line of a ``postprocess.decontaminate`` split (dev and test by
default) removed before the split, each listed in the set's ``removed.jsonl`` with the line it matched.

Without the benchmark's data the check cannot run: the set is built as it is, the card says the check was skipped
and why, and the next post-processing run (``postprocess_only=true``) checks it once the data is there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from erc.data.contamination import check_contamination_config, load_benchmark_lines
from erc.data.schema import Dialogue, MissingDataError

log = logging.getLogger(__name__)


@dataclass
class Decontaminated:
    """The dialogues kept, the card's ``contamination`` entry (None: not checked) and the removed dialogues'
    ``removed.jsonl`` lines."""

    kept: list[Dialogue]
    entry: dict[str, Any] | None = None
    removed: list[dict[str, Any]] = field(default_factory=list)


def decontaminate(cfg: DictConfig, dialogues: list[Dialogue]) -> Decontaminated:
    """Check ``dialogues`` against ``cfg.benchmark``'s splits and remove those carrying a line of a
    ``postprocess.decontaminate`` split (see the module docstring)."""
    node, splits = cfg.get("contamination"), list(cfg.postprocess.get("decontaminate") or [])
    check_contamination_config(node, splits)
    if node is None:
        return Decontaminated(dialogues)
    benchmark = str(cfg.benchmark.name)
    try:
        lines = load_benchmark_lines(benchmark, cfg.paths.data_dir, int(node.min_words), int(node.ngram))
    except MissingDataError as err:
        reason = str(err).splitlines()[0]
        log.warning("%s: contamination check skipped, so no dialogue is checked for %s's own lines (%s); rerun "
                    "with postprocess_only=true once the data is there", cfg.out_dir, benchmark, reason)
        return Decontaminated(dialogues, {"skipped": reason, "decontaminate": splits})
    found = lines.check(dialogues)
    drop = found.matches(splits)
    removed = [{"id": d.id, "removed_by": "decontaminate", "match": drop[d.id].to_dict()}
               for d in dialogues if d.id in drop]
    entry = {"against": benchmark, **found.summary(int(node.examples)), "decontaminate": splits,
             "removed": len(removed), "removed_file": "removed.jsonl" if splits else None}
    if removed:
        log.warning("%s: removed %d dialogue(s) carrying a line of %s's %s split(s) (removed.jsonl)", cfg.out_dir,
                    len(removed), benchmark, "/".join(splits))
    return Decontaminated([d for d in dialogues if d.id not in drop], entry, removed)
