"""The one YAML reader: a mapping from a file (or a ``--set`` value), every failure a one-line
ConfigError, every input bounded.

Limits (a scenario or profile is a few KB; these are far above any real file and far below
what would exhaust memory or the stack):

* :data:`MAX_YAML_BYTES` -- file size, checked before reading;
* :data:`MAX_DEPTH` -- nesting of mappings / sequences (PyYAML composes recursively: ~1,000
  levels end in ``RecursionError``);
* :data:`MAX_NODES` -- nodes after expanding aliases, counted on the composed graph without
  expanding it (a 664-byte "billion laughs" file expands to 10^9 nodes);
* a mapping key must be a plain value (a list or mapping as a key is refused with its line);
  a key given twice is refused; YAML merge keys (``<<: *base``) are supported, explicit keys
  overriding merged ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rlsim.errors import ConfigError, short_repr

__all__ = ["read_yaml_mapping", "parse_yaml_value", "MAX_YAML_BYTES", "MAX_DEPTH", "MAX_NODES"]

#: Largest YAML file read, bytes.
MAX_YAML_BYTES = 8 * 1024 * 1024
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64
#: Most nodes a document may hold once its aliases are expanded.
MAX_NODES = 1_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Limits(Exception):
    """A limit broken while composing (turned into a ConfigError naming the source)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with depth and alias-expansion limits, plain keys only, no duplicate keys."""

    _rlsim_depth = 0

    def compose_node(self, parent, index):
        self._rlsim_depth += 1
        try:
            if self._rlsim_depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Limits(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._rlsim_depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                if not isinstance(key_node, ScalarNode):
                    what = "list" if isinstance(key_node, SequenceNode) else "mapping"
                    raise _Limits(f"line {key_node.start_mark.line + 1}: a {what} cannot be a mapping key "
                                  f"(keys are plain names)")
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Limits(f"line {key_node.start_mark.line + 1} duplicate key {short_repr(key)} "
                                  f"(first given on line {seen[key] + 1})")
                seen[key] = key_node.start_mark.line
            self.flatten_mapping(node)
            for key_node, _ in node.value:  # keys brought in by a merge
                if not isinstance(key_node, ScalarNode):
                    raise _Limits(f"line {key_node.start_mark.line + 1}: a non-scalar mapping key (keys are plain names)")
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e6`` as the string '1e6'; a user writing it means a number
_StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _expanded_nodes(root: Node) -> int:
    """Nodes of ``root`` with every alias expanded, without expanding (memoised on node ids;
    iterative, so depth does not matter; stops counting past :data:`MAX_NODES`)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    on_stack: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids: list[Node] = []
        if isinstance(node, SequenceNode):
            kids = list(node.value)
        elif isinstance(node, MappingNode):
            kids = [n for pair in node.value for n in pair]
        if not children_done:
            if id(node) in on_stack:  # a recursive alias: the constructor refuses it anyway
                sizes[id(node)] = 1
                continue
            on_stack.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
            continue
        on_stack.discard(id(node))
        sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(sizes.get(id(k), 1) for k in kids))
    return sizes[id(root)]


def _load(text: str, where: str):
    """Compose, check the limits, construct; every failure a ConfigError starting with ``where``."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_nodes(node) > MAX_NODES:
                raise _Limits(f"expands to more than {MAX_NODES:,} values through its aliases (&/*)")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _Limits as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, str) else chr(exc.character) if isinstance(exc.character, int) else "?"
        raise ConfigError(f"{where}: invalid YAML: character {char!r} (position {exc.position}) "
                          f"is not allowed in YAML text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
        raise ConfigError(f"{where}:{line} invalid YAML: {problem}") from None
    except (ValueError, OverflowError) as exc:  # an int of more than 4,300 digits, a date out of range
        raise ConfigError(f"{where}: invalid YAML: a value cannot be read ({str(exc)[:80]})") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps well below the stack limit
        raise ConfigError(f"{where}: nested too deeply") from None


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """Read ``path`` as a YAML mapping; ``what`` names the argument in messages (``scenario``)."""
    from rlsim._paths import check_path_text

    check_path_text(str(path), None, what)
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} = {short_repr(str(path))}: is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError(f"{what} = {short_repr(str(path))}: file not found")
    try:
        size = p.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is larger than a YAML file may be ({MAX_YAML_BYTES:,} bytes)")
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): is this a YAML file?") from None
    data = _load(text, str(path))
    if not isinstance(data, dict):
        got = "nothing (an empty file)" if data is None else type(data).__name__
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {got}")
    return data


def parse_yaml_value(text: str, where: str, strict: bool = False):
    """One ``--set`` / ``--grid`` value (or, ``strict``, a whole document) parsed as YAML with
    the same limits; unless ``strict``, text that is not YAML stays the string it is
    (``--set model.name=a:b``)."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: the value is {len(text):,} characters, more than {MAX_YAML_BYTES:,}")
    try:
        return _load(text, where)
    except ConfigError as err:
        if not strict and " invalid YAML: " in str(err) and "\x00" not in text:
            return text
        raise
