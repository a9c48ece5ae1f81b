"""Matching helpers: globs over names, CIDR networks, domain suffixes. Cached, pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import lru_cache


class GlobSet:
    """A set of shell-style globs (``db.*``, ``prod-triage-*``) with a result cache."""

    __slots__ = ("_cache", "_exact", "_globs", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not any(c in p for c in "*?["))
        self._globs = tuple(p for p in self.patterns if p not in self._exact)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        hit = self._cache.get(name)
        if hit is None:
            hit = name in self._exact or any(fnmatchcase(name, g) for g in self._globs)
            if len(self._cache) < 50_000:
                self._cache[name] = hit
        return hit


class TrustedDestinations:
    """Trusted CIDR networks and domains (``corp.example``, ``*.corp.example``)."""

    def __init__(self, networks: Iterable[str], domains: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        exact: set[str] = set()
        suffixes: list[str] = []
        for d in domains:
            d = d.lower().rstrip(".")
            if d.startswith("*."):
                suffixes.append(d[1:])
            else:
                exact.add(d)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def domain_names(self) -> list[str]:
        """The trusted domains, without the ``*.`` of wildcard entries."""
        return sorted(self._exact) + [s.lstrip(".") for s in self._suffixes]

    def host_trusted(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        ip = _as_ip(host)
        if ip is not None:
            return ip.is_loopback or any(ip in net for net in self._networks)
        if host in self._exact or host == "localhost":
            return True
        return any(host.endswith(s) for s in self._suffixes)


@lru_cache(maxsize=4096)
def _as_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
