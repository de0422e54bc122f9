"""Alert scenarios for `promtool test rules` (the unit-test file format of
https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/): one
case per alert, a series set on which it must fire and one on which it must stay silent."""


def firing(alert: str, eval_time: str, expect: bool) -> dict:
    """An expression test: at ``eval_time`` the alert is (or is not) firing."""
    return {"expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"}})', "eval_time": eval_time,
            "exp_samples": [{"labels": "{}", "value": 1}] if expect else []}


def fire_and_silent(cases: dict) -> list[dict]:
    """Two promtool tests per ``{alert: (interval, eval_time, fire_series, silent_series)}``."""
    tests = []
    for alert, (interval, at, fire, silent) in cases.items():
        tests.append({"name": f"{alert} fires", "interval": interval, "input_series": fire,
                      "promql_expr_test": [firing(alert, at, True)]})
        tests.append({"name": f"{alert} stays silent", "interval": interval, "input_series": silent,
                      "promql_expr_test": [firing(alert, at, False)]})
    return tests
