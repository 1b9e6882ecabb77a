"""The process's metrics: the token endpoint's lock-free counter and histogram."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import TOKEN_BUCKETS, Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(metrics.render().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_token_answers_counted_by_code_with_ok_from_the_start() -> None:
    """`ok` is exported at 0 before any answer; each code counts its answers."""
    metrics = Metrics()
    assert _samples(metrics)[("tokenbroker_token_requests_total", (("code", "ok"),))] == 0
    for code in ("ok", "ok", "Unauthorized"):
        metrics.count_token_request(code, 0.002)
    samples = _samples(metrics)
    assert samples[("tokenbroker_token_requests_total", (("code", "ok"),))] == 2
    assert samples[("tokenbroker_token_requests_total", (("code", "Unauthorized"),))] == 1


def test_token_durations_fill_cumulative_buckets_bound_included() -> None:
    """A duration equal to a bound counts in that bucket; the buckets are cumulative."""
    metrics = Metrics()
    for seconds in (TOKEN_BUCKETS[0], 0.003, 99.0):
        metrics.count_token_request("ok", seconds)
    samples = _samples(metrics)

    def bucket(le: str) -> float:
        return samples[("tokenbroker_token_request_seconds_bucket", (("le", le),))]

    assert bucket("0.001") == 1 and bucket("0.0025") == 1 and bucket("0.005") == 2
    assert bucket("10.0") == 2 and bucket("+Inf") == 3
    assert samples[("tokenbroker_token_request_seconds_count", ())] == 3
    assert abs(samples[("tokenbroker_token_request_seconds_sum", ())] - 99.004) < 1e-9
