"""New API's log lines, byte for byte as it writes them (NEWAPI-CONTRACT.md §5):

    [GIN] 2006/01/02 - 15:04:05 | <route_tag> | <request-id> | %3d | %13v | %15s | %7s <path>
    (middleware/logger.go: status, latency, client IP and method right-aligned)
    [INFO|WARN|ERR|DEBUG] 2006/01/02 - 15:04:05 | <request-id or SYSTEM> | msg   (logger/logger.go)
    [SYS] 2006/01/02 - 15:04:05 | msg          [FATAL] 2006/01/02 - 15:04:05 | [msg]  (common/sys_log.go)
"""


def gin(route: str, request_id: str, status: int, latency: str, ip: str, method: str, path: str,
        when: str = "2026/11/22 - 10:15:30") -> str:
    """A ``[GIN]`` access line formatted as Go's ``%3d | %13v | %15s | %7s`` formats it."""
    return f"[GIN] {when} | {route} | {request_id} | {status:3d} | {latency:>13} | {ip:>15} | {method:>7} {path}"


LINES = {
    "gin": gin("relay", "20261122101530123456789abcdefgh", 200, "1.234567ms", "10.244.0.17", "POST",
               "/v1/chat/completions"),
    "gin_no_request_id": gin("api", "", 200, "345.678µs", "127.0.0.1", "GET", "/api/status",
                             when="2026/11/22 - 10:15:31"),
    "gin_slow_ipv6": gin("relay", "abc123", 502, "1m2.345678s", "2001:db8::1", "POST", "/v1/messages",
                         when="2026/11/22 - 10:15:32"),
    "info": "[INFO] 2026/11/22 - 10:15:33 | 20261122101533abc | user 1 | channel 3 | model gpt-4o",
    "err": "[ERR] 2026/11/22 - 10:15:34 | SYSTEM | failed to sync channel: context deadline exceeded",
    "warn": "[WARN] 2026/11/22 - 10:15:35 | SYSTEM | TRUSTED_PROXIES is not set",
    "sys": "[SYS] 2026/11/22 - 10:15:36 | New API v1.0.0-rc.25 started | port 3000",
    "fatal": "[FATAL] 2026/11/22 - 10:15:37 | [failed to initialize database: dial tcp: connection refused]",
}
