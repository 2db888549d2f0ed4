"""The statistics command on the real benchmarks: tables, stats.json and the label-distribution PNG."""

import json
import subprocess
import sys

from PIL import Image

from erc.data.stats import collect, report
from erc.paths import PROJECT_ROOT


def test_stats_counts_and_plot(benchmark_data, tmp_path):
    result = collect(benchmark_data, ["meld", "emorynlp"])
    report(result, tmp_path)
    assert result["meld"]["test"].utterances == 2610
    assert result["meld"]["train"].labels["fear"] == 268
    assert list(result["emorynlp"]["dev"].labels) == ["neutral", "joyful", "peaceful", "powerful", "scared", "mad",
                                                      "sad"]
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert saved["emorynlp"]["train"]["dialogues"] == 713
    with Image.open(tmp_path / "label_distribution_meld.png") as image:
        assert image.size[0] > 400 and image.size[1] > 200


def test_collect_finds_what_is_there(benchmark_data, tmp_path):
    assert list(collect(benchmark_data)) == ["meld", "emorynlp"]
    assert collect(tmp_path) == {}


def test_stats_command_line(benchmark_data, tmp_path):
    out = subprocess.run([sys.executable, "-m", "erc.data.stats", "--data-dir", str(benchmark_data), "--out",
                          str(tmp_path), "meld"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert "== meld" in out.stdout and "train" in out.stdout
    assert (tmp_path / "label_distribution_meld.png").is_file()
