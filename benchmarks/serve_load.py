"""Load on the real service: `recloop serve` with SASRec on ML-1M, driven over loopback.

A load benchmark, not a study: it measures the service's latency and throughput, which a grid
does not, so it stays a benchmark command. Its figures: RESULTS.md "Serving under load
(`serve_load`)".

Starts the server in a subprocess (SQLite event store in a temporary folder, pinned to one
core), then drives ``/recommend`` (per exploration mode) and ``/feedback`` with a keep-alive
HTTP/1.1 client of ``C`` concurrent connections (asyncio, pinned to the other core) for a
fixed time per cell. Latency is measured by the client, from writing the request to reading
the whole response.

    python benchmarks/serve_load.py --run DIR            # an existing ML-1M SASRec run
    python benchmarks/serve_load.py --work DIR           # trains one there first

Writes tidy rows to ``benchmarks/results/serve_load.csv`` (``method`` = endpoint,
``variant`` = exploration, ``concurrency``; metrics ``p50_ms``, ``p95_ms``, ``p99_ms``,
``req_per_s``, ``errors``) and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
SASREC_ML1M = {"max_len": 50, "batch_size": 64, "lr": 3e-3, "lr_decay": 0.5, "lr_patience": 4,
               "patience": 10, "bf16": True}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(work: Path, epochs: int) -> Path:
    from recloop.bench import RunSpec, train_run

    out = work / f"sasrec-ml1m-e{epochs}"
    if not (out / "model" / "model.json").exists():
        spec = RunSpec(
            model="sasrec", data="ml-1m", seed=0, params={**SASREC_ML1M, "epochs": epochs}
        )
        train_run(spec, out, progress=True)
    return out


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload


async def drive(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float,
                keep: bool = False) -> tuple[np.ndarray, int, float, list[bytes]]:  # fmt: skip
    """Send ``bodies`` round-robin from ``concurrency`` connections for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    kept: list[bytes] = []
    next_body = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_body, errors
        client = Client(port)
        while time.perf_counter() < end:
            body = bodies[next_body % len(bodies)]
            next_body += 1
            t0 = time.perf_counter()
            status, payload = await client.post(path, body)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
            elif keep:
                kept.append(payload)
        if client.writer is not None:
            client.writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return np.asarray(latencies) * 1000.0, errors, elapsed, kept


async def drive_open(port: int, path: str, bodies: list[bytes], concurrency: int,
                     seconds: float, rate: float, seed: int) -> tuple[np.ndarray, int, float]:  # fmt: skip
    """Open loop: requests arrive as a Poisson process of ``rate`` per second (seeded), and
    each is sent on the first free one of ``concurrency`` connections. Latency counts from
    the scheduled arrival, so time spent waiting for a free connection is included (no
    coordinated omission): a server slower than ``rate`` shows as growing latency."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, int(rate * seconds * 2) + 10)
    arrivals = np.cumsum(gaps)
    arrivals = arrivals[arrivals < seconds]
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        client = Client(port)
        while (job := await queue.get()) is not None:
            due, body = job
            status, _ = await client.post(path, body)
            latencies.append(time.perf_counter() - due)
            errors += status != 200
        if client.writer is not None:
            client.writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    start = time.perf_counter()
    for n, at in enumerate(arrivals):
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((start + at, bodies[n % len(bodies)]))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return np.asarray(latencies) * 1000.0, errors, time.perf_counter() - start


def propensity_check(run: Path, seed: int, users: int = 20) -> pd.DataFrame:
    """Softmax slot-3..10 propensities on ML-1M: the frequency estimate against the
    Rao-Blackwellised one, at several draw counts, against a 20,000-draw Rao-Blackwellised
    reference. Each row: relative RMS error over the shown items and the time per request."""
    from recloop.ope.policies import Exploration, slot_marginals
    from recloop.serve.learner import OnlineLearner
    from recloop.serve.policy import ServingPolicy
    from recloop.serve.settings import Settings

    policy = ServingPolicy(run, Settings(run_dir=str(run)))
    snapshot = OnlineLearner(policy).snapshot
    rule = Exploration("softmax", temperature=policy.settings.temperature)
    rng = np.random.default_rng(seed)
    rows = []
    for user in rng.choice(policy.user_ids, users, replace=False):
        rec = policy.recommend(str(user), snapshot, 10, "softmax", rng)
        allowed = np.ones(policy.n_items, bool)
        allowed[policy.known_history(str(user))] = False
        final = rec.scores  # only the shown items' final scores are returned: rebuild all
        raw = policy.model.score(np.array([policy.user_index[str(user)]]))[0].astype(np.float64)
        z = (raw - raw[allowed].mean()) / raw[allowed].std()
        ref, _ = slot_marginals(z[None], rule, 10, allowed[None], n_sim=20_000, seed=seed,
                                rao_blackwell=True)  # fmt: skip
        truth = ref[0, rec.items, np.arange(10)][2:]
        assert np.allclose(final, z[rec.items])  # an untouched bandit adds nothing
        for rb, sizes in ((False, (64, 256, 1024)), (True, (16, 32, 64, 256))):
            for n in sizes:
                t0 = time.perf_counter()
                est, _ = slot_marginals(z[None], rule, 10, allowed[None], n_sim=n,
                                        seed=seed + 1, rao_blackwell=rb)  # fmt: skip
                ms = (time.perf_counter() - t0) * 1000
                got = est[0, rec.items, np.arange(10)][2:]
                rows.append({"estimator": "rao-blackwell" if rb else "frequency", "draws": n,
                             "rel_rmse": float(np.sqrt(np.mean((got / truth - 1) ** 2))),
                             "zeros": int((got <= 0).sum()), "ms": ms})  # fmt: skip
    return pd.DataFrame(rows).groupby(["estimator", "draws"]).mean().reset_index()


def grouping(port: int, worker: str) -> tuple[float, float]:
    """(groups, requests) the server's ``worker`` has served so far, from /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(f"recloop_{worker}_")}  # fmt: skip
    return values[f"recloop_{worker}_groups"], values[f"recloop_{worker}_grouped"]


def tidy_propensities(table: pd.DataFrame, seed: int, users: int = 20) -> pd.DataFrame:
    """The estimator table as tidy rows (DESIGN.md): one figure a row."""
    from recloop.runs import git_sha, machine

    return pd.DataFrame([
        {"benchmark": "serve_propensities", "dataset": "ml-1m", "method": r.estimator,
         "variant": f"{int(r.draws)} draws", "seed": seed, "split": "softmax slots 3-10",
         "metric": metric, "value": float(getattr(r, metric)), "n": users,
         "git_sha": git_sha(), "machine": machine()}
        for r in table.itertuples() for metric in ("rel_rmse", "zeros", "ms")
    ])  # fmt: skip


def pin(cores: str) -> list[str]:
    return ["taskset", "-c", cores] if sys.platform.startswith("linux") else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, help="an ML-1M SASRec run directory")
    ap.add_argument("--work", type=Path, default=Path("bench-serve"), help="where to train one")
    ap.add_argument("--epochs", type=int, default=60, help="epochs when training")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--explorations", default="none,epsilon,softmax,thompson")
    ap.add_argument("--seconds", type=float, default=10.0, help="per cell")
    ap.add_argument(
        "--rates",
        default="300",
        help="open-loop arrival rates (req/s) over 16 connections; '' for none",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-cores", default="0")
    ap.add_argument("--client-cores", default="1")
    ap.add_argument(
        "--propensities",
        action="store_true",
        help="only compare softmax propensity estimators (in process)",
    )
    args = ap.parse_args()
    run = args.run or train(args.work, args.epochs)
    if args.propensities:
        table = propensity_check(run, args.seed)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        tidy_propensities(table, args.seed).to_csv(RESULTS / "serve_propensities.csv",
                                                   index=False)  # fmt: skip
        return
    vocab = json.loads((run / "vocab.json").read_text())
    users = [str(u) for u in vocab["users"]]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    modes = args.explorations.split(",")
    rates = [float(r) for r in args.rates.split(",") if r]
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "RECLOOP_SEED": str(args.seed)}
        server = subprocess.Popen(
            [*pin(args.server_cores), sys.executable, "-m", "recloop", "serve", str(run),
             "--port", str(port), "--db-url", f"sqlite:///{tmp}/events.db", "--log-level",
             "warning"], env=env)  # fmt: skip
        try:
            import httpx

            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            if args.client_cores and sys.platform.startswith("linux"):
                os.sched_setaffinity(0, {int(c) for c in args.client_cores.split(",")})
            pool: list[bytes] = []
            for mode in modes:
                bodies = [json.dumps({"user_id": rng.choice(users), "k": 10,
                                      "exploration": mode}).encode() for _ in range(5000)]  # fmt: skip
                asyncio.run(drive(port, "/recommend", bodies, 4, 2.0))  # warm-up
                for c in concurrency:
                    before = grouping(port, "recommend")
                    lat, errors, elapsed, kept = asyncio.run(
                        drive(port, "/recommend", bodies, c, args.seconds, keep=not pool)
                    )
                    group = _mean_group(before, grouping(port, "recommend"))
                    pool = pool or kept
                    rows += _rows("recommend", mode, c, lat, errors, elapsed, args.seed, group)
                    _say("recommend", mode, c, "closed", lat, elapsed, group, errors)
                for rate in rates:  # open loop: a fixed arrival rate over 16 connections
                    before = grouping(port, "recommend")
                    lat, errors, elapsed = asyncio.run(drive_open(
                        port, "/recommend", bodies, 16, args.seconds, rate, args.seed))  # fmt: skip
                    group = _mean_group(before, grouping(port, "recommend"))
                    rows += _rows("recommend", mode, 16, lat, errors, elapsed, args.seed, group,
                                  rate)  # fmt: skip
                    _say("recommend", mode, 16, f"{rate:g}/s", lat, elapsed, group, errors)
            served = [json.loads(p) for p in pool]
            for c in concurrency:
                bodies = []
                for n in range(20000):
                    rec = served[n % len(served)]
                    item = rec["items"][rng.randrange(len(rec["items"]))]["item_id"]
                    bodies.append(json.dumps({
                        "event_id": f"c{c}-{n}", "request_id": rec["request_id"],
                        "user_id": rec["user_id"], "item_id": item,
                        "type": rng.choice(["click", "view", "skip"])}).encode())  # fmt: skip
                before = grouping(port, "feedback")
                lat, errors, elapsed, _ = asyncio.run(drive(port, "/feedback", bodies, c,
                                                            args.seconds))  # fmt: skip
                group = _mean_group(before, grouping(port, "feedback"))
                rows += _rows("feedback", "none", c, lat, errors, elapsed, args.seed, group)
                _say("feedback", "none", c, "closed", lat, elapsed, group, errors)
        finally:
            server.terminate()
            server.wait(timeout=30)
    write(pd.DataFrame(rows), args)


def _say(endpoint: str, mode: str, c: int, arrival: str, lat: np.ndarray, elapsed: float,
         group: float, errors: int) -> None:  # fmt: skip
    print(f"{endpoint:9s} {mode:8s} c={c:3d} {arrival:>7s}: p50 {np.percentile(lat, 50):6.1f} "
          f"ms p99 {np.percentile(lat, 99):6.1f} ms {len(lat) / elapsed:7.1f} req/s "
          f"group {group:5.1f} errors {errors}", flush=True)  # fmt: skip


def _mean_group(before: tuple[float, float], after: tuple[float, float]) -> float:
    groups = after[0] - before[0]
    return (after[1] - before[1]) / groups if groups else 0.0


def _rows(endpoint: str, mode: str, c: int, lat: np.ndarray, errors: int, elapsed: float,
          seed: int, group: float, rate: float = float("nan")) -> list[dict[str, object]]:  # fmt: skip
    from recloop.runs import git_sha, machine

    values = {"p50_ms": np.percentile(lat, 50), "p95_ms": np.percentile(lat, 95),
              "p99_ms": np.percentile(lat, 99), "req_per_s": len(lat) / elapsed,
              "errors": float(errors), "mean_group": group}  # fmt: skip
    return [{"benchmark": "serve_load", "dataset": "ml-1m", "method": endpoint, "variant": mode,
             "seed": seed, "split": "load", "concurrency": c, "offered_per_s": rate,
             "metric": k, "value": float(v),
             "n": len(lat), "git_sha": git_sha(), "machine": machine()}
            for k, v in values.items()]  # fmt: skip


def write(frame: pd.DataFrame, args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "serve_load.csv", index=False)
    frame = frame.assign(arrival=[("closed loop" if np.isnan(r) else f"open, {r:g}/s")
                                  for r in frame["offered_per_s"]])  # fmt: skip
    wide = frame.pivot_table(index=["method", "variant", "concurrency", "arrival"],
                             columns="metric", values="value").reset_index()  # fmt: skip
    lines = [
        f"SASRec on ML-1M, `recloop serve` (SQLite, synchronous=FULL) on core "
        f"{args.server_cores}, client on core {args.client_cores}, {args.seconds:g} s per cell, "
        f"k = 10.",
        "",
        "| endpoint | exploration | clients | arrivals | p50 ms | p95 ms | p99 ms | req/s "
        "| mean group | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in wide.itertuples():
        lines.append(f"| {r.method} | {r.variant} | {r.concurrency} | {r.arrival} | "
                     f"{r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.req_per_s:.0f} | "
                     f"{r.mean_group:.1f} | {r.errors:.0f} |")  # fmt: skip
    (RESULTS / "serve_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
