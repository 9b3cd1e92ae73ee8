"""Counters for GET /metrics, in Prometheus's text format: requests and their latency by route,
method and status; the connection pool; the values stored. Kept in the process, which is the HAT."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

# Latency buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _Series:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))


class Metrics:
    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], _Series] = defaultdict(_Series)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._series[(route, method, status)]
        series.count += 1
        series.total += seconds
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                series.buckets[index] += 1

    def render(self, gauges: dict[str, tuple[str, dict[str, float]]]) -> str:
        """The exposition text: the request series, then each gauge {name: (help, {labels: value})}."""
        lines = [
            "# HELP hatd_requests_total Requests answered, by route, method and status.",
            "# TYPE hatd_requests_total counter",
        ]
        for (route, method, status), series in sorted(self._series.items()):
            lines.append(f'hatd_requests_total{{route="{route}",method="{method}",status="{status}"}} {series.count}')
        lines += [
            "# HELP hatd_request_seconds Time to answer, by route, method and status.",
            "# TYPE hatd_request_seconds histogram",
        ]
        for (route, method, status), series in sorted(self._series.items()):
            labels = f'route="{route}",method="{method}",status="{status}"'
            for bound, count in zip(BUCKETS, series.buckets, strict=True):
                lines.append(f'hatd_request_seconds_bucket{{{labels},le="{bound}"}} {count}')
            lines.append(f'hatd_request_seconds_bucket{{{labels},le="+Inf"}} {series.count}')
            lines.append(f"hatd_request_seconds_sum{{{labels}}} {series.total:.6f}")
            lines.append(f"hatd_request_seconds_count{{{labels}}} {series.count}")
        for name, (text, values) in gauges.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            for labels, value in values.items():
                lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """A gauge's value in full: a unix time keeps its seconds (":g" would round it to 6 digits)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
