"""Read results from a sweep folder, a scores CSV or W&B into one long table of W-F1 scores.

Whatever the source, the evaluation works on the same table with one row per
(classifier, variant, source, benchmark, test set, seed) and these columns:

- ``classifier``, ``variant``: the model family and its ablation variant (``variant`` may be None);
- ``source``: ``org`` (fine-tuned on the benchmark only) or ``nat`` / ``bal`` (pretrained on that
  generated set first);
- ``benchmark``: the benchmark the model was fine-tuned on (None when unknown);
- ``test_set``: ``<benchmark>_<org|nat|bal>``, a row of the paper's Table IV;
- ``seed``; ``wf1``: weighted F1 as a fraction in [0, 1] (NaN when a run reported no value);
- ``origin``: the file (and line) or W&B run the value came from, for error messages.

Sweep folders and W&B projects also say which jobs did *not* report (a Hydra job folder with no
``results.json``, a W&B run that crashed or still runs): :func:`read_sweep` and :func:`read_wandb`
return them beside the table, so the evaluation can refuse a smaller test than the one planned.

Keeping one table means Table III, Table IV and the plots never care where scores came from,
and results never depend on a W&B server: the sweep folder's ``results.json`` files suffice.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf

from erc.data import BENCHMARKS, SOURCES, DataError, parse_test_set
from erc.data.text import read_text
from erc.errors import ConfigError
from erc.identity import job_identity
from erc.secrets import wandb_api_key_configured
from erc.tracking import wandb_mode

COLUMNS = ["classifier", "variant", "source", "benchmark", "test_set", "seed", "wf1", "origin"]
# Classifiers in the paper's column order; others follow in order of appearance.
KNOWN_CLASSIFIERS: tuple[str, ...] = ("compm", "emoone", "todkat")
_TEST_METRIC = re.compile(r"^test/(?P<test_set>[^/]+)/wf1$")


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "wf1" else object) for c in COLUMNS})


def _to_score(value: Any, where: str) -> float:
    """A W-F1 value as a float fraction; None/NaN stay missing, anything else non-numeric is an error."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: W-F1 must be a number, got {value!r}")
    value = float(value)
    if not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: W-F1 must be a fraction in [0, 1], got {value}")
    return value


def rows_from_result(result: Mapping[str, Any], origin: str) -> list[dict[str, Any]]:
    """Table rows from one job's results (``results.json`` contents, or a W&B run's identity + summary).

    Only ``test/<benchmark>_<split>/wf1`` metrics of the job's own benchmark are taken: they are the
    cells of Table IV. A job that reported none (e.g. it failed before testing) contributes nothing,
    so its cells show as missing.
    """
    identity = result.get("identity")
    if not isinstance(identity, Mapping):
        raise DataError(f"{origin}: field 'identity' is missing or not an object")
    for field in ("classifier", "source", "benchmark"):
        if not isinstance(identity.get(field), str) or not identity.get(field):
            raise DataError(f"{origin}: field 'identity.{field}' is missing or not a string")
    if identity["source"] not in SOURCES:
        raise DataError(f"{origin}: field 'identity.source' is {identity['source']!r}; Table III and IV compare "
                        f"the paper's sources {', '.join(SOURCES)} (a filtered set's jobs are not part of them: "
                        f"leave them out with '+select.source=[org,nat,bal]' or a sweep folder of their own)")
    metrics = result.get("metrics")
    if not isinstance(metrics, Mapping):
        raise DataError(f"{origin}: field 'metrics' is missing or not an object")
    rows = []
    for key, value in metrics.items():
        match = _TEST_METRIC.match(key)
        if not match:
            continue
        test_set = match["test_set"]
        if parse_test_set(test_set)[0] != identity["benchmark"]:
            continue  # another benchmark's test set: not a cell of this model's rows
        rows.append({
            "classifier": identity["classifier"], "variant": identity.get("variant"),
            "source": identity["source"], "benchmark": identity["benchmark"], "test_set": test_set,
            "seed": identity.get("seed"), "wf1": _to_score(value, f"{origin}: metrics[{key!r}]"),
            "origin": origin,
        })
    return rows


def _check_duplicates(table: pd.DataFrame) -> None:
    """Two jobs with the same identity would be silently averaged as if they were two seeds."""
    keys = ["classifier", "variant", "source", "benchmark", "test_set", "seed"]
    # str() of each value: astype(str) keeps a None variant or seed missing (pandas 3), which "|".join refuses
    identity = table[keys].map(str).agg("|".join, axis=1)
    counts = identity.value_counts()
    if counts.empty or counts.iloc[0] < 2:
        return
    rows = table[identity == counts.index[0]]
    first = rows.iloc[0]
    origins = sorted(set(rows["origin"]))
    raise DataError(
        f"the same job appears twice ({first['classifier']}, variant {first['variant']}, source "
        f"{first['source']}, test set {first['test_set']}, seed {first['seed']}): {' and '.join(origins)}. "
        "Point sweep= at one sweep, remove the duplicate, or narrow it with select=.")


def _allowed(wanted: Any) -> list[str]:
    """A ``select.<field>`` value (one value or a list of allowed values) as strings."""
    values = [wanted] if isinstance(wanted, str) or not isinstance(wanted, Iterable) else list(wanted)
    return [str(v) for v in values]


def check_select(select: Mapping[str, Any] | None) -> None:
    """``select`` may only name identity fields (checked before any file is read)."""
    for field in select or {}:
        if field not in COLUMNS[:6]:
            raise ConfigError(f"select.{field}: unknown field; valid: {', '.join(COLUMNS[:6])}")


def select_rows(table: pd.DataFrame, select: Mapping[str, Any] | None) -> pd.DataFrame:
    """Keep rows whose identity fields match ``select``; a selection that keeps nothing is an error
    listing the values there are (a typo must not look like an empty sweep)."""
    check_select(select)
    for field, wanted in (select or {}).items():
        kept = table[table[field].astype(str).isin(_allowed(wanted))]
        if kept.empty and not table.empty:
            present = ", ".join(sorted(table[field].astype(str).unique()))
            raise DataError(f"select.{field}={wanted!r} matches none of the {len(table)} scores left; "
                            f"{field} values there: {present}")
        table = kept
    return table


def _matches(identity: Mapping[str, Any], select: Mapping[str, Any] | None) -> bool:
    """Whether a job's identity passes ``select`` (``test_set`` is not a job field: a job has several)."""
    return all(str(identity.get(field)) in _allowed(wanted) for field, wanted in (select or {}).items()
               if field != "test_set")


def _describe_job(identity: Mapping[str, Any] | None) -> str:
    if identity is None:
        return "identity unknown"
    variant = f"[{identity['variant']}]" if identity.get("variant") else ""
    return f"{identity['classifier']}{variant}, {identity['data']}, seed {identity['seed']}"


def _hydra_job_identity(config_path: Path) -> dict[str, Any] | None:
    """The identity of the train.py job whose ``.hydra/config.yaml`` this is: None when the folder is another
    task's (an evaluate or generate run below the same folder), ``{}`` when the job's identity cannot be read
    (it still counts as a job)."""
    try:
        config = OmegaConf.load(config_path)
    except (OSError, yaml.YAMLError):  # a damaged config: the job still counts, its identity is unknown
        return {}
    if OmegaConf.select(config, "task_name", default=None, throw_on_resolution_failure=False) != "train":
        return None
    fields = {key: OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)
              for key in ("classifier.name", "classifier.variant", "data.benchmark", "data.source", "seed")}
    try:
        return identity_from_config({"classifier": {"name": fields["classifier.name"],
                                                    "variant": fields["classifier.variant"]},
                                     "data": {"benchmark": fields["data.benchmark"], "source": fields["data.source"]},
                                     "seed": fields["seed"]}, str(config_path))
    except DataError:
        return {}


def unfinished_jobs(folder: Path, select: Mapping[str, Any] | None = None) -> list[str]:
    """The train.py job folders below ``folder`` (Hydra's ``.hydra/config.yaml`` marks one) with no
    ``results.json``: jobs that failed, were killed or still run. Jobs ``select`` leaves out are not listed."""
    found = []
    for config_path in sorted(folder.rglob(".hydra/config.yaml")):
        job = config_path.parent.parent
        if (job / "results.json").is_file():
            continue
        identity = _hydra_job_identity(config_path)
        if identity is None or (identity and not _matches(identity, select)):
            continue
        found.append(f"{job} ({_describe_job(identity or None)})")
    return found


def read_sweep(folder: str | Path, select: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every ``results.json`` below ``folder`` (any depth), one table row per test-set score, and the job
    folders that have none (see :func:`unfinished_jobs`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"sweep folder {folder} does not exist or is not a folder")
    files = sorted(folder.rglob("results.json"))
    unfinished = unfinished_jobs(folder, select)
    if not files:
        detail = (f"its {len(unfinished)} job folder(s) have none (failed or unfinished): {'; '.join(unfinished)}"
                  if unfinished else "is it a train.py sweep folder (outputs/train/multiruns/<time>)?")
        raise DataError(f"no results.json below {folder}: {detail}")
    rows: list[dict[str, Any]] = []
    for path in files:
        try:
            result = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err
        if not isinstance(result, Mapping):
            raise DataError(f"{path}: expected a JSON object at the top level")
        identity = result.get("identity")
        if isinstance(identity, Mapping) and identity.get("source") not in SOURCES and not _matches(identity, select):
            continue      # a filtered set's job that select= leaves out: not refused for a source it cannot rank
        rows.extend(rows_from_result(result, str(path)))
    table = pd.DataFrame(rows, columns=COLUMNS) if rows else empty_table()
    table = select_rows(table, select)
    _check_duplicates(table)
    return table, unfinished


def read_scores_csv(path: str | Path, unit: str = "auto") -> pd.DataFrame:
    """A scores matrix: first column the test set, then one column per ``<classifier>_<source>``.

    ``unit`` says how the numbers are written: ``fraction`` (0.6543), ``percent`` (65.43) or
    ``auto`` (percent when any value exceeds 1, as W-F1 fractions never do). Empty cells are missing.
    """
    path = Path(path)
    if unit not in ("auto", "fraction", "percent"):
        raise DataError(f"scores_unit must be auto, fraction or percent, got {unit!r}")
    if not path.is_file():
        raise DataError(f"scores file {path} does not exist")
    reader = csv.reader(io.StringIO(read_text(path, "utf-8-sig"), newline=""))
    lines = [(number, row) for number, row in enumerate(reader, start=1) if any(c.strip() for c in row)]
    if len(lines) < 2:
        raise DataError(f"{path}: needs a header line and at least one test-set line")
    header = [c.strip() for c in lines[0][1]]
    instances = []
    for column, name in enumerate(header[1:], start=2):
        classifier, _, source = name.rpartition("_")
        if not classifier or source not in SOURCES:
            raise DataError(f"{path}: line 1, column {column}: {name!r} is not <classifier>_<source> "
                            f"with source in {', '.join(SOURCES)}")
        instances.append((classifier, source))
    if len(set(instances)) != len(instances):
        raise DataError(f"{path}: line 1: a model instance column appears twice")
    cells: list[tuple[str, str, str, float, str]] = []
    seen: dict[str, int] = {}
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}: line {number}: {len(row)} fields, the header has {len(header)}")
        test_set = row[0].strip()
        if not test_set:
            raise DataError(f"{path}: line {number}, column 1: empty test-set name")
        if test_set in seen:
            raise DataError(f"{path}: line {number}: test set {test_set!r} already on line {seen[test_set]}")
        seen[test_set] = number
        for (classifier, source), name, text in zip(instances, header[1:], row[1:], strict=True):
            text = text.strip()
            where = f"{path}: line {number}, column {name!r}"
            try:
                value = float(text) if text else math.nan
            except ValueError as err:
                raise DataError(f"{where}: {text!r} is not a number") from err
            cells.append((classifier, source, test_set, value, where))
    values = [c[3] for c in cells if not math.isnan(c[3])]
    if unit == "auto":
        unit = "percent" if any(v > 1 for v in values) else "fraction"
    scale = 100.0 if unit == "percent" else 1.0
    rows = []
    for classifier, source, test_set, value, where in cells:
        rows.append({"classifier": classifier, "variant": None, "source": source,
                     "benchmark": parse_test_set(test_set)[0], "test_set": test_set, "seed": None,
                     "wf1": _to_score(value / scale, where), "origin": where})
    return pd.DataFrame(rows, columns=COLUMNS)


def _wandb_unreachable_reason() -> str | None:
    """Why reading runs through ``wandb.Api()`` cannot work here (checked before any W&B call), or None."""
    if wandb_mode() != "online" and os.environ.get("WANDB_MODE"):
        return f"WANDB_MODE={os.environ['WANDB_MODE']} is set"
    if not wandb_api_key_configured():
        return "no W&B API key is configured (WANDB_API_KEY or `wandb login`)"
    return None


def identity_from_config(config: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """A job identity from a W&B run's config: its ``identity`` entry if logged, else
    :func:`erc.identity.job_identity` of the resolved training config that train.py logs."""
    if isinstance(config.get("identity"), Mapping):
        return dict(config["identity"])
    try:
        return job_identity(config)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{origin}: config has neither 'identity' nor 'classifier.name', 'data.benchmark', "
                        f"'data.source' and 'seed' ({err!r})") from err


def read_wandb(project: str, entity: str | None = None, group: str | None = None,
               select: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Finished runs of a W&B project (optionally one group) through ``wandb.Api()``, and the runs that
    did not finish (crashed, failed, killed or still running; see :func:`rows_from_wandb_runs`)."""
    reason = _wandb_unreachable_reason()
    if reason:
        raise DataError(f"reading finished W&B runs (the input when neither sweep= nor scores= is given) needs "
                        f"W&B online, but {reason}. Give one of: sweep=<a train.py multirun folder> (its "
                        "results.json files), scores=<a scores CSV>, or wandb.project=<project> "
                        "[wandb.group=<group>] with W&B online (`wandb sync` offline runs first).")
    import wandb

    path = f"{entity}/{project}" if entity else project
    filters = {"group": group} if group else {}
    where = path + (f", group {group}" if group else "")
    try:
        return rows_from_wandb_runs(_iter_runs(wandb.Api().runs(path, filters=filters)), where, select)
    except wandb.errors.Error as err:  # bad key, server down, unknown project: the user's to fix
        raise DataError(f"reading W&B runs of {where} failed: {err}. Check the API key, WANDB_BASE_URL and "
                        "wandb.project/wandb.entity, or give sweep=<folder> or scores=<csv> instead.") from None


def rows_from_wandb_runs(runs: Iterable[Any], where: str, select: Mapping[str, Any] | None = None
                         ) -> tuple[pd.DataFrame, list[str]]:
    """The score table of W&B runs (objects with ``id``, ``name``, ``state``, ``config``, ``summary_metrics``).

    The identity comes from each run's config (see :func:`identity_from_config`), the
    ``test/<benchmark>_<split>/wf1`` metrics from its summary. Runs that are not finished give no
    scores and are returned as unfinished (with their identity), so their absence is never silent.
    """
    rows: list[dict[str, Any]] = []
    unfinished = []
    for run in runs:
        if getattr(run, "job_type", None) == "evaluate":
            continue
        origin = f"W&B run {where}: {run.id} ({run.name})"
        identity = identity_from_config(run.config, origin)
        if run.state != "finished":
            if _matches(identity, select):
                unfinished.append(f"{origin}, state {run.state} ({_describe_job(identity)})")
            continue
        rows.extend(rows_from_result({"identity": identity, "metrics": run.summary_metrics}, origin))
    if not rows:
        raise DataError(f"no finished W&B runs with test W-F1 in {where}"
                        + (f"; not finished: {'; '.join(unfinished)}" if unfinished else ""))
    table = select_rows(pd.DataFrame(rows, columns=COLUMNS), select)
    _check_duplicates(table)
    return table, unfinished


def _iter_runs(runs: Iterable[Any]) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(runs, desc="W&B runs", unit="run")


def order_classifiers(names: Iterable[str]) -> list[str]:
    """Known classifiers in the paper's order, then the others in order of first appearance."""
    unique = list(dict.fromkeys(names))
    known = {name: i for i, name in enumerate(KNOWN_CLASSIFIERS)}
    return sorted(unique, key=lambda n: (known.get(n.split("[")[0], len(known)), unique.index(n)))


def order_test_sets(names: Iterable[str]) -> list[str]:
    """Test sets by benchmark (paper order) and split (org, nat, bal), unknown names last."""
    unique = list(dict.fromkeys(names))

    def key(name: str) -> tuple[int, int, int]:
        benchmark, split = parse_test_set(name)
        b = BENCHMARKS.index(benchmark) if benchmark in BENCHMARKS else len(BENCHMARKS)
        s = SOURCES.index(split) if split else len(SOURCES)
        return b, s, unique.index(name)

    return sorted(unique, key=key)


def add_models(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``model``: the classifier, or ``classifier[variant]`` where a classifier has several variants.

    A sweep with one variant per classifier (the paper's setting) keeps plain names (``compm``);
    an ablation sweep with ``pm=pretrained`` and ``pm=scratch`` gets two distinct models.
    """
    table = table.copy()
    variants = table.groupby("classifier")["variant"].agg(lambda v: v.dropna().nunique())
    several = set(variants[variants > 1].index)
    table["model"] = [f"{c}[{v}]" if c in several else c
                      for c, v in zip(table["classifier"], table["variant"], strict=True)]
    return table
