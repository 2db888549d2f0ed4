"""Generation against a rate-limited API: prints figures, asserts nothing.

A loopback OpenAI-compatible chat server limited to 20 requests/s (a request beyond 20 in the last second is answered
429 with ``Retry-After: 1``, as hosted APIs do), answering after 50 ms, served in its own process. Side by side:

- ``generate.py`` (``llm=openai llm.route=chat llm.concurrency=64 n_dialogues=200``), whose requests in flight and
  pace adapt to the 429s (erc/llm/ratelimit.py);
- what a user would otherwise write: the same 64 requests in flight through openai-python's own client, which
  retries 429s itself (honouring Retry-After, up to 10 times), no pacing.

For each: requests served, 429 answers (as a share of the served), and the served rate against the limit.

    .venv/bin/python bench/rate_limit.py [--dialogues 200] [--limit 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TQDM_DISABLE", "1")  # figures only, no progress bars

import erc  # noqa: E402, F401
from erc.data.labels import label_set  # noqa: E402
from erc.pipeline import generate  # noqa: E402

from helpers.config import compose_config  # noqa: E402
from helpers.loopback_openai import LoopbackOpenAI  # noqa: E402
from helpers.loopback_tgi import ScriptedDialogues  # noqa: E402


def serve(limit: int, port_out: multiprocessing.Queue, stats_in: multiprocessing.Queue,
          stats_out: multiprocessing.Queue) -> None:
    """The rate-limited server, in its own process: reports its counts each time it is asked."""
    with LoopbackOpenAI(ScriptedDialogues(label_set("iemocap")), rate_limit=limit, latency_s=0.05) as server:
        port_out.put(server.v1)
        while stats_in.get() is not None:
            accepted = list(server.accepted_times)
            stats_out.put((len(accepted), server.rate_limited, accepted[0] if accepted else 0.0,
                           accepted[-1] if accepted else 0.0))
            server.accepted_times.clear()
            server.rate_limited = 0
            server.accepted_at.clear()


async def plain_client(url: str, requests: int, concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=10)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.chat.completions.create(model="loopback/chat-model", seed=i, max_tokens=64,
                                                 messages=[{"role": "user", "content": f"dialogue {i}"}])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    ports, asks, answers = multiprocessing.Queue(), multiprocessing.Queue(), multiprocessing.Queue()
    process = multiprocessing.Process(target=serve, args=(args.limit, ports, asks, answers), daemon=True)
    process.start()
    url = ports.get(timeout=30)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; server: {args.limit} requests/s, 429 with Retry-After: 1, 50 ms latency")
    print(f"{'client':<46} {'served':>7} {'429s':>6} {'429/served':>10} {'rate/limit':>10} {'wall s':>7}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        generate(compose_config("generate", [
            "llm=openai", "llm.route=chat", f"llm.url={url}", "benchmark=iemocap", f"paths.data_dir={tmp}",
            f"paths.synthetic_dir={tmp}/synthetic",
            f"n_dialogues={args.dialogues}", "llm.concurrency=64", "llm.max_retries=20", "quality.enabled=false"]))
        rows["generate.py (adaptive window and pace)"] = time.monotonic() - started
        asks.put(1)
        stats = [answers.get()]
        served = stats[0][0]
    started = time.monotonic()
    asyncio.run(plain_client(url, served, 64))
    rows["openai-python, 64 in flight, its own retries"] = time.monotonic() - started
    asks.put(1)
    stats.append(answers.get())
    asks.put(None)
    for (name, wall), (n, refused, first, last) in zip(rows.items(), stats, strict=True):
        rate = (n - 1) / (last - first) if last > first else 0.0
        print(f"{name:<46} {n:>7} {refused:>6} {refused / n:>10.1%} {rate / args.limit:>10.2f} {wall:>7.1f}")
        print(f"summary: rate-limited API ({args.limit}/s), {name}: {rate / args.limit:.2f} x the limit, "
              f"429s {refused / n:.1%} of served (goal: >= 0.9, <= 10 %)")


if __name__ == "__main__":
    main()
