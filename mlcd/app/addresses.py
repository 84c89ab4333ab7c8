"""The addresses `mlcd serve` and `mlcd ui` listen on: their URL, and whether only this machine
can reach them (neither has authentication). Standard library only, so `mlcd ui` does not load
the scoring stack to use them."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
