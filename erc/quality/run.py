"""The report's two entry points: ``quality.py`` (every generated set of a benchmark, into the job's folder) and
generation's hook (the set just post-processed, into its own folder, with the opt-in fidelity filter)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.data.contamination import check_contamination_config
from erc.data.dedup import check_dedup_config
from erc.data.labels import check_not_overridden
from erc.data.names import FILTERED_SOURCES, GENERATED_SOURCES, dataset_name, is_filtered_source
from erc.data.schema import SPLITS, DataError, MissingDataError
from erc.io import write_json_atomic
from erc.quality.checks import check_generate_quality_config, check_quality_config
from erc.quality.corpus import Corpus, read_generated_set
from erc.quality.filter import filter_set
from erc.quality.outputs import card_summary, markdown_table, write_report
from erc.quality.plots import report_plots
from erc.quality.report import QualityReport
from erc.secrets import public_config

log = logging.getLogger(__name__)


def holds_dialogues(folder: Path) -> bool:
    """Whether a set's split files hold any dialogue; an empty set (a filter that kept nothing, before such sets were
    no longer written) is skipped with a warning instead of failing the report of every set."""
    if any((folder / f"{split}.jsonl").is_file() and (folder / f"{split}.jsonl").read_text(encoding="utf-8").strip()
           for split in SPLITS):
        return True
    log.warning("%s holds no dialogue: skipped (delete the folder, or make the set again)", folder)
    return False


def generated_set_folders(synthetic_dir: str | Path, benchmark: str) -> list[Path]:
    """Every generated set of ``benchmark`` in ``synthetic_dir`` that holds dialogues (natural, balanced, the
    filtered ones of the filters that ship, then those of filters of the user's own)."""
    root = Path(synthetic_dir)
    found = {folder.name.removeprefix(f"{benchmark}_") for folder in root.glob(f"{benchmark}_*_*")}
    others = sorted(s for s in found - set(FILTERED_SOURCES) if is_filtered_source(s))  # filters of the user's own
    folders = [root / dataset_name(benchmark, s) for s in (*GENERATED_SOURCES, *FILTERED_SOURCES, *others)]
    return [f for f in folders if any((f / f"{split}.jsonl").is_file() for split in SPLITS) and holds_dialogues(f)]


def _chosen_sets(cfg: DictConfig, benchmark: str) -> list[Path]:
    if not cfg.get("sets"):
        found = generated_set_folders(cfg.paths.synthetic_dir, benchmark)
        if not found:
            former = Path(cfg.paths.data_dir) / "synthetic"
            if generated_set_folders(former, benchmark) and former.resolve() != Path(cfg.paths.synthetic_dir).resolve():
                raise DataError(f"no generated set of {benchmark} in {cfg.paths.synthetic_dir}, but {former} holds "
                                f"some, the former place inside the benchmark folder: move them with `mkdir -p "
                                f"{cfg.paths.synthetic_dir} && mv {former}/{benchmark}_* {cfg.paths.synthetic_dir}/`")
            raise DataError(f"no generated set of {benchmark} in {cfg.paths.synthetic_dir}: make one with `python "
                            f"generate.py benchmark={benchmark}`, or name one with sets=[<folder>]")
        return found
    named = [Path(s) if Path(str(s)).is_dir() else Path(cfg.paths.synthetic_dir) / str(s) for s in cfg.sets]
    return [folder for folder in named if not folder.is_dir() or holds_dialogues(folder)]


def _publish(cfg: DictConfig, report: QualityReport, folders: list[Path]) -> dict[str, Any]:
    """Write the report into each of ``folders`` (and to W&B when asked); returns ``quality.json``'s content."""
    data = report.to_dict()
    plots = report_plots(report)
    for folder in folders:
        paths = write_report(folder, data, plots)
    if cfg.quality.wandb:
        from erc.quality.tracking import log_report  # wandb is imported only when asked for

        # the job's folder (a set's folder is for its data), else the first folder written
        run_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False) or folders[0]
        log.info("W&B run of the quality report: %s", log_report(cfg.quality, public_config(cfg), data, paths,
                                                                 Path(run_dir)))
    return data


def quality(cfg: DictConfig) -> dict[str, Any]:
    """``quality.py``: score the sets of ``cfg.sets`` (default: every generated set of ``cfg.benchmark`` found)
    against the benchmark; ``quality.json``, ``quality.md``, the PNGs and ``quality_run.json`` (what this run
    encoded, cache hits, timings) go to ``paths.output_dir``, and the table to stdout."""
    check_not_overridden(cfg.benchmark)
    check_quality_config(cfg.quality)
    check_dedup_config(cfg.dedup)
    check_contamination_config(cfg.get("contamination"))
    benchmark = str(cfg.benchmark.name)
    folders = _chosen_sets(cfg, benchmark)
    report = QualityReport(cfg.quality, benchmark, cfg.paths.data_dir, cfg.dedup, cfg.get("contamination"))
    for folder in folders:
        report.add_set(read_generated_set(folder, benchmark))
    out = Path(cfg.paths.output_dir)
    data = _publish(cfg, report, [out])
    write_json_atomic(out / "quality_run.json", report.run_facts())
    print(markdown_table(data), flush=True)
    log.info("quality report of %s in %s (quality.md, quality.json, PNGs)", ", ".join(data["columns"][1:]), out)
    return data


@dataclass
class SetAssessment:
    """What post-processing puts in the cards: the set's ``quality`` entry (None when not asked, ``{"skipped":
    why}`` without the benchmark's data) and, with a filter, the filtered set (its folder and dialogues), its
    ``filter`` entry and its ``quality`` entry."""

    quality: dict[str, Any] | None = None
    filtered: Corpus | None = None
    filter: dict[str, Any] | None = None
    filtered_quality: dict[str, Any] | None = None


def assess_generated_set(cfg: DictConfig, folder: str | Path) -> SetAssessment:
    """Generation's hook (see the module docstring): score the set in ``folder`` when ``quality.enabled`` and
    write its filtered variant when ``postprocess.filter`` is set. A missing benchmark skips the report (said in
    the card) but stops a requested filter, which cannot work without it."""
    check_generate_quality_config(cfg)
    folder = Path(folder)
    enabled, filter_name = bool(cfg.quality.enabled), cfg.postprocess.get("filter")
    if not enabled and not filter_name:
        return SetAssessment()
    benchmark = str(cfg.benchmark.name)
    try:
        report = QualityReport(cfg.quality, benchmark, cfg.paths.data_dir, cfg.dedup, cfg.get("contamination"))
    except MissingDataError as err:
        if filter_name:
            raise DataError(f"postprocess.filter={filter_name} needs {benchmark}'s train split to train its probe: "
                            f"{err}") from None
        reason = str(err).splitlines()[0]
        log.info("%s: quality report skipped (%s); run `python quality.py benchmark=%s` once the data is there",
                 folder, reason, benchmark)
        return SetAssessment(quality={"skipped": reason})
    scored = report.add_set(read_generated_set(folder, benchmark))
    outcome = SetAssessment()
    folders = [folder]
    if filter_name:
        filtered, outcome.filter = filter_set(scored, report.names, float(cfg.postprocess.max_rejected), filter_name)
        outcome.filtered = filtered
        if filtered.dialogues:     # else no set was written, and write_filtered_set said so
            report.add_set(filtered)
            folders.append(filtered.folder)
        log.info("%s: %d of %d dialogues kept by the %s filter", filtered.folder, outcome.filter["dialogues"]["kept"],
                 outcome.filter["dialogues"]["before"], filter_name)
    if not enabled:
        return outcome
    data = _publish(cfg, report, folders)
    outcome.quality = card_summary(data, scored.corpus.name)
    if outcome.filtered is not None and outcome.filtered.name in data["metrics"]:
        outcome.filtered_quality = card_summary(data, outcome.filtered.name)
    mine, real = data["metrics"][scored.corpus.name], data["metrics"][benchmark]
    if mine.get("too_small"):
        log.warning("%s: %d utterances, too few for the quality report's fidelity and usefulness figures (flagged "
                    "too small in %s)", scored.corpus.name, len(scored.corpus), folder / "quality.md")
        return outcome
    log.info("%s quality: kappa %.2f (real %.2f), probe W-F1 trained on it %s (real %.1f, majority %.1f); see %s",
             scored.corpus.name, mine["kappa"], real["kappa"],
             "-" if mine["probe_wf1"] is None else f"{100 * mine['probe_wf1']:.1f}", 100 * real["probe_wf1"],
             100 * real["majority_wf1"], folder / "quality.md")
    log.debug("quality run: %s", report.run_facts())
    return outcome
