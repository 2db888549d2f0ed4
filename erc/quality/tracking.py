"""``quality.wandb=true``: the report's table, suspicious utterances and plots in a ``job_type=quality`` W&B run,
offline without an API key (the project's one mode rule and settings, :mod:`erc.tracking`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erc.quality.outputs import ROWS
from erc.tracking import wandb_mode, wandb_settings


def log_report(quality: Any, config: dict[str, Any], report: dict[str, Any], plots: list[Path], folder: Path
               ) -> str:
    """Log to a new W&B run in ``folder``; returns the run's local folder."""
    import wandb

    columns = report["columns"]
    run = wandb.init(project=str(quality.wandb_project), job_type="quality", name=f"quality-{report['benchmark']}",
                     dir=str(folder), mode=wandb_mode(quality.get("wandb_mode")), config=config,
                     settings=wandb_settings())
    try:
        metrics = wandb.Table(columns=["metric", *columns],
                              data=[[title, *[report["metrics"][c].get(key) for c in columns]]
                                    for key, title, _ in ROWS])
        logged: dict[str, Any] = {"quality/metrics": metrics}
        for name, rows in report["suspicious"].items():
            logged[f"quality/suspicious/{name}"] = wandb.Table(
                columns=["id", "text", "label", "probe", "label_quality"],
                data=[[r["id"], r["text"], r["label"], r["probe"], r["label_quality"]] for r in rows])
        for path in plots:
            if path.suffix == ".png":
                logged[f"quality/{path.stem}"] = wandb.Image(str(path))
        run.log(logged)
        for column in columns:
            for key, _, _ in ROWS:
                value = report["metrics"][column].get(key)
                if isinstance(value, (int, float)):
                    run.summary[f"{column}/{key}"] = value
        return str(run.dir)
    finally:
        run.finish()
