"""Which endpoint a request reaches, decided the way dockerd's router decides it.

dockerd (Go ``net/http`` + gorilla ``mux``) routes on ``URL.Path``: the request target
parsed as ``url.ParseRequestURI`` does (absolute form allowed, no fragment split), then
percent-decoded strictly. A path that is not clean is redirected, and a path matching no
route is answered 404, before any middleware runs: the plugin is only ever asked about
clean paths that matched a route, with an optional ``/v{version:[0-9.]+}`` prefix.
Anything we cannot parse exactly like Go raises ``RouteError`` (a deny on writes).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_VERSION = re.compile(r"^/v([0-9.]+)(/.*)$")
_HEX = "0123456789abcdefABCDEF"

# POST routes the plugin judges: dockerd's patterns ({name:.*} may hold slashes).
ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((kind, re.compile(pattern)) for kind, pattern in (
    ("container_create", r"^/containers/create$"),
    ("container_start", r"^/containers/(?P<name>.*)/start$"),
    ("container_restart", r"^/containers/(?P<name>.*)/restart$"),
    ("container_update", r"^/containers/(?P<name>.*)/update$"),
    ("container_rename", r"^/containers/(?P<name>.*)/rename$"),
    ("container_prune", r"^/containers/prune$"),
    ("exec_create", r"^/containers/(?P<name>.*)/exec$"),
    ("exec_start", r"^/exec/(?P<name>.*)/start$"),
    ("service_create", r"^/services/create$"),
    ("service_update", r"^/services/(?P<name>[^/]+)/update$"),
    ("plugin_pull", r"^/plugins/pull$"),
    ("plugin_create", r"^/plugins/create$"),
    ("plugin_enable", r"^/plugins/(?P<name>.*)/enable$"),
    ("plugin_upgrade", r"^/plugins/(?P<name>.*)/upgrade$"),
    ("plugin_set", r"^/plugins/(?P<name>.*)/set$"),
    ("build", r"^/build$"),
    ("volume_create", r"^/volumes/create$"),
))


class RouteError(ValueError):
    """A request target we cannot read exactly as dockerd does."""


@dataclass(frozen=True)
class Route:
    kind: str  # one of ROUTES' kinds, or "other"
    path: str  # decoded, without the version prefix
    version: str | None  # as written in the path, e.g. "1.41" or "1.41.0"
    name: str = ""  # the {name} variable
    query: dict[str, list[str]] = field(default_factory=dict)

    def arg(self, key: str) -> str:
        """``r.Form.Get(key)``: the first value, or empty."""
        return (self.query.get(key) or [""])[0]


def unescape(text: str, plus_is_space: bool = False) -> str:
    """Go's ``url.unescape``: ``%XX`` only, anything else after ``%`` is an error."""
    if "%" not in text and not (plus_is_space and "+" in text):
        return text
    out = bytearray()
    data = text.encode("utf-8", errors="surrogatepass")
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == ord("%"):
            pair = data[i + 1:i + 3].decode("ascii", errors="replace")
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                raise RouteError(f"invalid URL escape {text[i:i + 3]!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(ord(" ") if plus_is_space and ch == ord("+") else ch)
        i += 1
    return out.decode("utf-8", errors="replace")


def parse_query(raw: str) -> dict[str, list[str]]:
    """Go's ``url.ParseQuery`` (Go 1.17+): ``&``-separated; a semicolon or a bad escape
    is an error, which makes dockerd's ``ParseForm`` fail the request."""
    out: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        if ";" in pair:
            raise RouteError("invalid semicolon separator in query")
        key, _, value = pair.partition("=")
        out.setdefault(unescape(key, True), []).append(unescape(value, True))
    return out


def split_target(uri: str) -> tuple[str, str]:
    """(raw path, raw query) of a request target, as ``url.ParseRequestURI`` splits it."""
    if uri.startswith("/"):
        rest = uri
    elif _SCHEME.match(uri):
        rest = uri.split(":", 1)[1]
        if not rest.startswith("//"):
            raise RouteError(f"opaque request target {uri!r}")
        rest = rest[2:]
        slash = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        rest = rest[slash:]
        if rest.startswith("?") or not rest:
            rest = "/" + rest if rest else "/"
    else:
        raise RouteError(f"request target {uri!r} is neither a path nor an absolute URL")
    path, _, query = rest.partition("?")
    return path, query


def clean(path: str) -> str:
    """gorilla mux's ``cleanPath``."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def route(uri: str) -> Route:
    """The endpoint ``uri`` reaches in dockerd."""
    raw_path, raw_query = split_target(uri)
    path = unescape(raw_path)
    if clean(path) != path:
        raise RouteError(f"path {path!r} is not clean (dockerd would redirect it)")
    query = parse_query(raw_query)
    version = None
    if match := _VERSION.match(path):
        version, path = match.group(1), match.group(2)
    for kind, pattern in ROUTES:
        if m := pattern.match(path):
            return Route(kind, path, version, m.groupdict().get("name") or "", query)
    return Route("other", path, version, "", query)


def _atoi(part: str) -> int:
    """strconv.Atoi as versions.compare uses it: errors read as 0, overflow clamps."""
    if not part.isdigit():
        return 0
    return min(int(part), 2 ** 63 - 1)


def version_less(version: str, other: str) -> bool:
    """moby ``api/types/versions.LessThan``: dot-separated components compared as ints."""
    a, b = version.split("."), other.split(".")
    for i in range(max(len(a), len(b))):
        x = _atoi(a[i]) if i < len(a) else 0
        y = _atoi(b[i]) if i < len(b) else 0
        if x != y:
            return x < y
    return False
