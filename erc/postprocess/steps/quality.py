"""The data-quality report as a post-processing step (:mod:`erc.quality`, docs/quality.md): the set scored against
its benchmark (``quality.md``, ``quality.json`` and PNGs in its folder, the headline figures in the card) and, with
``postprocess.filter=probe``, its fidelity-filtered variant ``<out_dir>_probe``. It runs after the judge, so the
report shows the judge's agreement."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from erc.postprocess.card import percent, table
from erc.postprocess.export import sizes
from erc.postprocess.step import FilteredSet, SetContext, Step


class QualityStep(Step):
    """See the module docstring."""

    sections = ("quality",)
    reads = ("judge",)

    def enabled(self, ctx: SetContext) -> bool:
        cfg = ctx.cfg
        asked = "quality" in cfg and (bool(cfg.quality.enabled) or bool(cfg.postprocess.get("filter")))
        return asked and bool(ctx.built.kept)

    def config(self, ctx: SetContext) -> Any:
        cfg = ctx.cfg
        return {"quality": OmegaConf.to_container(cfg.quality, resolve=True), "data_dir": str(cfg.paths.data_dir),
                "filter": cfg.postprocess.get("filter"), "max_rejected": cfg.postprocess.get("max_rejected")}

    def run(self, ctx: SetContext) -> bool:
        from erc.quality import assess_generated_set  # imported here: scikit-learn, cleanlab, torch

        assessment = assess_generated_set(ctx.cfg, ctx.out_dir)
        if assessment.quality is not None:
            ctx.card["quality"] = assessment.quality
        filtered = assessment.filtered
        if filtered is not None and filtered.dialogues and filtered.folder is not None:
            ctx.filtered.append(FilteredSet(str(filtered.folder), sizes(filtered.dialogues, ctx.built.labels),
                                            assessment.filter or {}, {"quality": assessment.filtered_quality}))
        return "skipped" not in (assessment.quality or {})  # a report skipped for want of data runs again

    def readme(self, card: dict[str, Any]) -> str:
        """The set's headline quality figures beside the real benchmark's."""
        quality = card.get("quality")
        if quality is None:
            return ""
        if "skipped" in quality:
            return f"\nQuality report: skipped ({quality['skipped']}).\n"
        mine, real, against = quality[card["dataset"]], quality[quality["against"]], quality["against"]
        if mine.get("too_small"):
            return (f"\nQuality against {against}: the set is too small for its fidelity and usefulness figures "
                    f"(`{quality['report']}` has the rest).\n")
        rows = [("agreement of its labels with a probe trained on the real data, %", percent(mine["agreement"]),
                 percent(real["agreement"])),
                ("Cohen's kappa of that agreement (0: labels unrelated to the text)", f"{mine['kappa']:.3f}",
                 f"{real['kappa']:.3f}"),
                (f"probe trained on it, W-F1 on {against} test (majority class: {percent(real['majority_wf1'])})",
                 percent(mine["probe_wf1"]), percent(real["probe_wf1"])),
                ("distinct-2, %", percent(mine["distinct_2"]), percent(real["distinct_2"])),
                ("self-BLEU", f"{mine['self_bleu']:.1f}", f"{real['self_bleu']:.1f}"),
                ("utterances ending mid-word, %", percent(mine["ends_mid_word"]), percent(real.get("ends_mid_word")))]
        header = ("", card["dataset"], f"{against} (real)")
        return (f"\nQuality against {against} (encoder `{quality['encoder']}`; the full report, plots and the most "
                f"suspicious labels: `{quality['report']}`):\n\n{table(rows, header)}\n")
