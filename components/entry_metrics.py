"""Where the app's RED signals (rate, errors, duration) come from: the public entry's
proxy, because New API has no ``/metrics`` (NEWAPI-CONTRACT.md §5).

One :class:`RedSource` per entry kind knows the metric names, the label matchers that
select the app's traffic, one version of it (canary or stable) and one group of paths
(the relay and playground, whose duration is the model's generation time, streamed, or
the rest of the API). Rules, alerts, dashboards, the canary and blue-green analyses and
Prometheus Adapter's rps metric are all written against this interface, so they mean
the same thing whichever entry carries the traffic. The relay's time to first byte comes
from ingress-nginx's header-time histogram, or on the Gateway API entry from Logstash's
counts of the proxies' access log (docs/relay-ttfb-gateway.md).

Pure functions, no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import logging_alerts as la

#: The app's path groups, in the order the entry routes them (the Gateway API entry's
#: rule index is this position). The relay (``/v1``: completions, often streamed) and
#: the playground (``/pg``) take as long as the model generates, so latency measures
#: leave them out (seed notes §4 #20); success rates count every group.
PATH_GROUPS: tuple[tuple[str, str], ...] = (("relay", "/v1"), ("playground", "/pg"), ("rest", "/"))
STREAMING_GROUPS = ("relay", "playground")
STREAMING_PATHS = tuple(p for g, p in PATH_GROUPS if g in STREAMING_GROUPS)

#: The relay SLO's threshold in seconds (issue 14), one value for the SLO, the canary gate
#: and what the Gateway API entry counts: a relay or playground request is fast when its
#: first response byte comes within it (the largest finite bucket of ingress-nginx's
#: default header-time histogram).
RELAY_FIRST_BYTE_LE = "10"

#: Which traffic a query measures: every version, the canary's own, or the stable one's.
VERSIONS = (None, "canary", "stable")


@dataclass(frozen=True)
class App:
    """The app as the entry routes to it."""
    namespace: str = "new-api"
    #: The stable Service (and the Ingress/HTTPRoute, named after the app).
    service: str = "new-api"
    service_port: int = 80
    #: Argo Rollouts' canary Service (``<app>-canary``).
    canary_service: Optional[str] = None

    @property
    def route(self) -> str:
        return self.service


class RedSource:
    """The RED metric source of one entry kind (see module docstring)."""
    kind: str
    #: Scrape job of the entry's data plane.
    job: str
    requests: str
    duration_bucket: str
    #: Histogram unit in seconds (Envoy records milliseconds).
    duration_unit: float = 1.0
    def __init__(self, app: App, relay_counted: bool = False):
        """``relay_counted``: where the proxy itself has no time-to-headers histogram, the
        relay's time to first byte is counted from its access log (see the subclass)."""
        self.app = app
        self._relay_counted = relay_counted

    @property
    def measures_relay(self) -> bool:
        """The entry measures the relay's time to its first response byte: the relay SLO,
        its burn alerts and the canary's ``relay-ttfb`` gate exist only then."""
        return False

    def selector(self, version: Optional[str] = None, groups: Optional[tuple] = None) -> str:
        """PromQL matchers (no braces) for the app's traffic of ``version`` on ``groups``
        of paths (None: every group)."""
        raise NotImplementedError

    #: The data plane's open client connections (dashboards).
    connections: str

    def class_matcher(self, status_class: str) -> str:
        """Matcher of the requests in :attr:`requests` with a status class (``"5"``: 5xx)."""
        raise NotImplementedError

    def error_matcher(self) -> str:
        """Matcher of the 5xx requests in :attr:`requests`."""
        return self.class_matcher("5")

    def relay_requests(self, le: str, version: Optional[str], window: str) -> str:
        """Relay and playground requests per second of ``version`` whose response headers
        (a stream's first byte) came within ``le`` seconds (``"+Inf"``: all of them)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- derived queries
    def request_rate(self, version: Optional[str] = None, window: str = "5m", errors: bool = False,
                     groups: Optional[tuple] = None, status_class: Optional[str] = None) -> str:
        sel = self.selector(version, groups) + (f",{self.error_matcher()}" if errors else "")
        sel += f",{self.class_matcher(status_class)}" if status_class else ""
        return f"sum(rate({self.requests}{{{sel}}}[{window}]))"

    def success_ratio(self, version: Optional[str] = None, window: str = "5m") -> str:
        """Share of non-5xx responses (NaN without traffic)."""
        sel = self.selector(version)
        return (f"sum(rate({self.requests}{{{sel},{self.not_error_matcher()}}}[{window}])) / "
                f"sum(rate({self.requests}{{{sel}}}[{window}]))")

    def not_error_matcher(self) -> str:
        name, _, value = self.error_matcher().partition("=~")
        return f"{name}!~{value}"

    def quantile(self, q: float, version: Optional[str] = None, window: str = "5m",
                 groups: tuple = ("rest",)) -> str:
        """Latency quantile in seconds of the non-streaming paths (default)."""
        expr = (f"histogram_quantile({q}, sum by (le) (rate({self.duration_bucket}"
                f"{{{self.selector(version, groups)}}}[{window}])))")
        return expr if self.duration_unit == 1.0 else f"{expr} / {1 / self.duration_unit:g}"

    def relay_fast_ratio(self, le: str, version: Optional[str] = None, window: str = "5m") -> Optional[str]:
        """Share of relay and playground requests whose response headers came within ``le``
        seconds; NaN without relay traffic, None where the entry does not measure it."""
        if not self.measures_relay:
            return None
        return f"{self.relay_requests(le, version, window)} / {self.relay_requests('+Inf', version, window)}"

    def relay_rate(self, window: str = "5m") -> Optional[str]:
        """Relay and playground requests per second that reached New API (None where the
        entry does not measure the relay)."""
        if not self.measures_relay:
            return None
        return self.relay_requests("+Inf", None, window)

    def _relay_metric_names(self) -> set:
        return set()

    @property
    def metric_names(self) -> frozenset:
        """Every metric name the queries above use (must be scraped)."""
        return frozenset({self.requests, self.duration_bucket, *_names(self.connections),
                          *(self._relay_metric_names() if self.measures_relay else ())})


class IngressNginx(RedSource):
    """ingress-nginx's request metrics (``internal/ingress/metric/collectors/socket.go``).

    Every request carries the ``namespace``/``ingress``/``service``/``path`` of the stable
    Ingress's location, canary traffic included (``rootfs/etc/nginx/lua/monitor.lua``);
    the canary differs only by ``canary``, the alternative upstream's name
    ``<namespace>-<service>-<port number>`` (``internal/ingress/controller/util.go``
    ``upstreamName``; Argo Rollouts keeps the stable Ingress's port when it builds the
    canary Ingress, ``rollout/trafficrouting/nginx/nginx.go``), empty for stable traffic.
    """
    kind = "ingress-nginx"
    job = "ingress-nginx"
    requests = "nginx_ingress_controller_requests"
    duration_bucket = "nginx_ingress_controller_request_duration_seconds_bucket"
    #: ``upstream_header_time`` (monitor.lua ``upstreamHeaderTime``; socket.go
    #: ``header_duration_seconds``, "The time spent on receiving first header from the
    #: upstream server"), default buckets 0.005 ... 10 s.
    header_bucket = "nginx_ingress_controller_header_duration_seconds_bucket"

    @property
    def measures_relay(self) -> bool:
        return True

    def relay_requests(self, le: str, version: Optional[str], window: str) -> str:
        sel = self.selector(version, STREAMING_GROUPS)
        return f'sum(rate({self.header_bucket}{{{sel},le="{le}"}}[{window}]))'

    def _relay_metric_names(self) -> set:
        return {self.header_bucket}

    def canary_upstream(self) -> str:
        """The alternative upstream's name, as ``upstreamName`` builds it."""
        if not self.app.canary_service:
            raise ValueError("the app has no canary Service: a canary query needs one")
        return f"{self.app.namespace}-{self.app.canary_service}-{self.app.service_port}"

    def selector(self, version: Optional[str] = None, groups: Optional[tuple] = None) -> str:
        assert version in VERSIONS, version
        sel = f'namespace="{self.app.namespace}",service="{self.app.service}"'
        if version == "canary":
            sel += f',canary="{self.canary_upstream()}"'
        elif version == "stable":
            sel += ',canary=""'
        if groups is not None:
            excluded = [p for g, p in PATH_GROUPS if g not in groups and p != "/"]
            included = [p for g, p in PATH_GROUPS if g in groups]
            if "/" in included:  # the catch-all location: everything but the other groups
                sel += ',path!~"' + "|".join(excluded) + '"' if excluded else ""
            else:
                sel += ',path=~"' + "|".join(included) + '"'
        return sel

    connections = 'sum(nginx_ingress_controller_nginx_process_connections{state="active"})'

    def class_matcher(self, status_class: str) -> str:
        return f'status=~"{status_class}.."'


class EnvoyGateway(RedSource):
    """Envoy's upstream cluster statistics, as Envoy Gateway names the clusters.

    Envoy Gateway names the cluster of an HTTPRoute rule ``httproute/<ns>/<route>/rule/<n>``
    (``internal/gatewayapi/helpers.go`` ``irRouteDestinationName``); weighted backendRefs of
    one rule share that cluster unless a backendRef carries filters, in which case every
    backendRef gets its own cluster ``.../rule/<n>/backend/<i>`` (``irDestinationSettingName``;
    ``internal/ir/xds.go`` ``NeedsClusterPerSetting`` / ``HasFiltersInSettings``;
    ``internal/xds/translator/translator.go``). The stack's HTTPRoutes give each backendRef
    a response-header filter, so backendRef 0 (stable) and 1 (canary) are separate clusters
    and their statistics separate versions (docs/gateway-canary-metrics.md).

    ``envoy_cluster_upstream_rq_xx`` counts completed upstream requests by status class
    (``envoy_response_code_class``); ``envoy_cluster_upstream_rq_time`` is a histogram in
    milliseconds.
    """
    kind = "gateway"
    job = "envoy-gateway"
    requests = "envoy_cluster_upstream_rq_xx"
    duration_bucket = "envoy_cluster_upstream_rq_time_bucket"
    duration_unit = 0.001
    #: backendRef index of each version in every rule (the canary's exists only with the
    #: canary strategy).
    BACKENDS = {"stable": 0, "canary": 1}
    #: The relay's time to first byte: Envoy has no time-to-headers statistic (the router
    #: charges ``upstream_rq_time`` in ``onUpstreamComplete``, at the end of a stream), so
    #: Logstash counts the proxies' access-log lines (docs/relay-ttfb-gateway.md): per
    #: version, every relay/playground request and those whose first upstream byte came
    #: within each of these bounds (seconds), each with a no-op filter of a fixed id whose
    #: ``events.out`` logstash-exporter reports.
    RELAY_BOUNDS = (RELAY_FIRST_BYTE_LE,)

    @property
    def measures_relay(self) -> bool:
        return self._relay_counted

    def cluster_regex(self, version: Optional[str] = None, groups: Optional[tuple] = None) -> str:
        """Regular expression (RE2 and Ruby alike, unanchored) of the Envoy cluster names of
        ``version``'s backendRef in the rules of ``groups`` (None: every one)."""
        rules = [str(i) for i, (g, _) in enumerate(PATH_GROUPS) if groups is None or g in groups]
        rule = rules[0] if len(rules) == 1 else "(" + "|".join(rules) + ")"
        backend = "[0-9]+" if version is None else str(self.BACKENDS[version])
        return f"httproute/{self.app.namespace}/{self.app.route}/rule/{rule}/backend/{backend}"

    def selector(self, version: Optional[str] = None, groups: Optional[tuple] = None) -> str:
        assert version in VERSIONS, version
        if version == "canary" and not self.app.canary_service:
            raise ValueError("the app has no canary Service: a canary query needs one")
        return f'envoy_cluster_name=~"{self.cluster_regex(version, groups)}"'

    #: Client connections of the proxies' Gateway listeners only: Envoy Gateway adds HTTP
    #: connection managers of its own (``admin``; ``eg-stats-http``, the Prometheus stats
    #: listener, ``internal/xds/bootstrap/bootstrap.yaml.tpl``; ``eg-ready-http``, readiness,
    #: ``internal/xds/translator/listener_ready.go``) whose connections (scrapes, the
    #: kubelet's probes) are not clients.
    connections = ('sum(envoy_http_downstream_cx_active'
                   '{envoy_http_conn_manager_prefix!~"admin|eg-ready-http|eg-stats-http"})')

    def class_matcher(self, status_class: str) -> str:
        return f'envoy_response_code_class=~"{status_class}"'

    @classmethod
    def relay_counter_id(cls, version: str, le: str) -> str:
        """``id`` of the pipeline's no-op filter counting ``version``'s relay requests whose
        first upstream byte came within ``le`` seconds (``+Inf``: all)."""
        assert version in cls.BACKENDS and (le == "+Inf" or le in cls.RELAY_BOUNDS), (version, le)
        return f"new_api_relay_ttfb_{version}_le_{'inf' if le == '+Inf' else le.replace('.', '_')}"

    def relay_requests(self, le: str, version: Optional[str], window: str) -> str:
        if le != "+Inf" and le not in self.RELAY_BOUNDS:
            raise ValueError(f"the relay's first byte is counted within {', '.join(self.RELAY_BOUNDS)} s "
                             f"only (EnvoyGateway.RELAY_BOUNDS), not {le} s")
        if version == "canary" and not self.app.canary_service:
            raise ValueError("the app has no canary Service: a canary query needs one")
        ids = [self.relay_counter_id(v, le) for v in ([version] if version else self.BACKENDS)]
        match = f'plugin_id="{ids[0]}"' if len(ids) == 1 else f'plugin_id=~"{"|".join(ids)}"'
        return (f'sum(rate({la.PLUGIN_EVENTS}{{pipeline="{la.PIPELINE_ID}",plugin_type="filter",{match}}}'
                f'[{window}]))')

    def _relay_metric_names(self) -> set:
        return {la.PLUGIN_EVENTS}


def _names(expr: str) -> set:
    import re
    return set(re.findall(r"([a-z_:][a-z0-9_:]*)\{", expr)) | set(re.findall(r"\(([a-z_:][a-z0-9_:]*)\)", expr))


def red_source(kind: str, app: App, relay_counted: bool = False) -> RedSource:
    """The RED source of an entry kind."""
    sources = {cls.kind: cls for cls in (IngressNginx, EnvoyGateway)}
    if kind not in sources:
        raise ValueError(f"entry kind {kind!r} has no metric source; one of {sorted(sources)}")
    return sources[kind](app, relay_counted)
