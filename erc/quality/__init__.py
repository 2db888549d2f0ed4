"""Data quality of generated sets: every set scored against its benchmark with an offline pretrained encoder
(label fidelity, usefulness of a probe trained on it, diversity and form, distance to the real set), and the
opt-in fidelity filter. ``python quality.py benchmark=meld``; ``generate.py`` runs it after post-processing.
See docs/quality.md."""

from erc.quality.checks import check_generate_quality_config
from erc.quality.run import SetAssessment, assess_generated_set, quality

__all__ = ["SetAssessment", "assess_generated_set", "check_generate_quality_config", "quality"]
