"""Authorization-plugin mode: nothing that breaks the policy starts.

``route`` reads a request target as dockerd's router does, ``gojson``/``types`` decode
bodies as Go's ``encoding/json`` does, ``handlers``/``widen`` hold one handler per
endpoint, ``engine`` asks dockerd what it stored, ``server`` speaks the plugin protocol.
"""

from ..engine import DockerEngine, Engine
from .handlers import MalformedRequestError, Request, Verdict, decide_request
from .server import DEFAULT_SOCKET_DIR, AuthzPlugin, activated_sockets, socket_path

__all__ = ["DEFAULT_SOCKET_DIR", "AuthzPlugin", "DockerEngine", "Engine", "MalformedRequestError", "Request",
           "Verdict", "activated_sockets", "decide_request", "socket_path"]
