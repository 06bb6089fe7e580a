"""Service metrics in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["BUCKETS", "Metrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters, gauges and latency histograms, rendered by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, tuple[str, float]] = {}
        self.counters: dict[str, tuple[str, float]] = {}
        self.model_version = ""

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(("endpoint", endpoint), ("status", str(status)))] += 1
            counts = self._hist.setdefault(endpoint, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self._sum[endpoint] += seconds
            self._count[endpoint] += 1

    def inc(self, name: str, help_text: str, by: float = 1.0) -> None:
        with self._lock:
            old = self.counters.get(name, (help_text, 0.0))[1]
            self.counters[name] = (help_text, old + by)

    def set(self, name: str, help_text: str, value: float) -> None:
        self.gauges[name] = (help_text, float(value))

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP recloop_requests_total HTTP requests by endpoint and status.",
                "# TYPE recloop_requests_total counter",
            ]
            for labels, n in sorted(self._requests.items()):
                lines.append(f"recloop_requests_total{_labels(labels)} {n}")
            lines += [
                "# HELP recloop_request_seconds Request latency by endpoint.",
                "# TYPE recloop_request_seconds histogram",
            ]
            for endpoint, counts in sorted(self._hist.items()):
                for bound, n in zip(BUCKETS, counts, strict=True):
                    le = (("endpoint", endpoint), ("le", repr(bound)))
                    lines.append(f"recloop_request_seconds_bucket{_labels(le)} {n}")
                inf = (("endpoint", endpoint), ("le", "+Inf"))
                lines.append(
                    f"recloop_request_seconds_bucket{_labels(inf)} {self._count[endpoint]}"
                )
                e = (("endpoint", endpoint),)
                lines.append(f"recloop_request_seconds_sum{_labels(e)} {self._sum[endpoint]:.6f}")
                lines.append(f"recloop_request_seconds_count{_labels(e)} {self._count[endpoint]}")
            for name, (help_text, value) in sorted(self.counters.items()):
                lines += [
                    f"# HELP {name} {help_text}",
                    f"# TYPE {name} counter",
                    f"{name} {value:g}",
                ]
            for name, (help_text, value) in sorted(self.gauges.items()):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
            lines += [
                "# HELP recloop_model_info The model version being served.",
                "# TYPE recloop_model_info gauge",
                f"recloop_model_info{_labels((('version', self.model_version),))} 1",
            ]
        return "\n".join(lines) + "\n"
