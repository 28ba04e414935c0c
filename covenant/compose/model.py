"""The compose project as plain data (:class:`Model`), a mapping that remembers its keys'
lines, and the error of a file that cannot be judged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# ``~`` as compose reads it: the home of whoever runs ``docker compose up``, which this machine
# does not know (compose is run with it as HOME; our reader writes ``~`` so), and a bind
# from under it cannot be judged (root's deploy mounts /root/.ssh, the runner's its own)
UNKNOWN_HOME = "/nonexistent/home-of-whoever-deploys"


class ComposeError(Exception):
    """A compose file that cannot be judged; ``str()`` is ``FILE[:LINE]: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the line of each key, for errors that name one."""

    line: int = 0
    lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class Model:
    """A compose project as plain data: compose's model (``services``, ``volumes``,
    ``networks``, ``secrets``, ``configs``), its name, the folder relative paths are taken
    from, and where the model came from (``tool``: the command that normalised it, or
    empty for our own reader). ``warnings``: what compose would warn about (a variable not
    set), to be shown once."""

    path: str
    name: str
    directory: str
    data: Mapping[str, Any]
    tool: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
