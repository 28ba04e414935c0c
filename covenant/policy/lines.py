"""The policy file's YAML: PyYAML's safe loader, remembering the line of every mapping key
(for ``FILE:LINE`` errors) and refusing a key written twice."""

from __future__ import annotations

from typing import Any

import yaml


class LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key and refuses duplicates."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {lines[key]})",
                    key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        mapping = Lines(super().construct_mapping(node, deep=True))
        mapping.lines = lines
        return mapping


class Lines(dict):  # type: ignore[type-arg]
    lines: dict[Any, int]


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, LineLoader.construct_mapping)


def _timestamp(loader: LineLoader, node: yaml.ScalarNode) -> Any:
    """YAML's timestamp, or its text when it names no real day (``2026-02-30``): PyYAML
    raises a bare ValueError there, which would escape the file:line errors."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
