"""The one YAML reader of mlprov: safe types, bounded alias expansion, bounded nesting.

An alias makes a node stand for another, so a few hundred bytes can expand to billions
of values ("billion laughs") the moment anything walks the result. PyYAML itself writes
anchors for shared objects (`&id001`), so aliases are not refused outright: the
document is composed, then its expanded size and depth are measured over the node graph
(each distinct node once) before any value is built. Aliases may add at most
`MAX_ALIAS_EXPANSION` nodes, and nothing may nest deeper than `MAX_YAML_DEPTH`,
expanded or not; an alias to its own ancestor (a cycle) is refused.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from mlprov.errors import InputError

#: Deepest nesting of mappings and sequences accepted, aliases expanded (layouts need < 10).
MAX_YAML_DEPTH = 64
#: Most nodes that aliases may add to a document when expanded.
MAX_ALIAS_EXPANSION = 100_000


class YamlRefused(yaml.YAMLError):
    """A construct mlprov refuses (too deep, aliases expanding too far), with where it is."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


class _Expansion:
    """Expanded size and height of a composed node graph, each distinct node measured once."""

    def __init__(self) -> None:
        self.measured: dict[int, tuple[int, int]] = {}
        self.open: set[int] = set()
        self.distinct = 0

    def measure(self, node: Node, depth: int) -> tuple[int, int]:
        """(expanded node count, expanded height) of `node`, found at `depth`."""
        key = id(node)
        if key in self.measured:
            size, height = self.measured[key]
            if depth + height > MAX_YAML_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", node.start_mark)
            return size, height
        if key in self.open:
            raise YamlRefused("an alias refers to a node that contains it", node.start_mark)
        if depth > MAX_YAML_DEPTH:
            raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", node.start_mark)
        self.open.add(key)
        self.distinct += 1
        size, height = 1, 0
        for child in _children(node):
            child_size, child_height = self.measure(child, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size - self.distinct > MAX_ALIAS_EXPANSION:
                raise YamlRefused(
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra values"
                    ' (a "billion laughs" document?)',
                    node.start_mark,
                )
        self.open.discard(key)
        self.measured[key] = (size, height)
        return size, height


class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that bounds nesting and the expansion of aliases before building."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node: Node | None = super().compose_document()
        if node is not None:
            _Expansion().measure(node, 1)
        return node


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong with a YAML document and on which line."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split()) or "cannot parse"
    return f"invalid YAML{where}: {problem}"


def load_yaml(data: bytes | str, *, source: str) -> Any:
    """Parse one YAML (or JSON) document safely; any problem is one InputError naming `source`."""
    loader: BoundedSafeLoader | None = None
    try:
        loader = BoundedSafeLoader(data)  # reading the first bytes can fail already
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: {yaml_problem(exc)}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # `2020-13-45`, `!!float x`
        detail = " ".join(str(exc).split())
        raise InputError(f"{source}: invalid YAML value ({detail})") from None
    except RecursionError:  # pragma: no cover - the depth cap comes first
        raise InputError(f"{source}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


class _PlainDumper(yaml.SafeDumper):
    """SafeDumper that writes a value shared twice twice, never as an anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(doc: Any) -> str:
    """YAML text of `doc` in its key order, without anchors or aliases."""
    text: str = yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)
    return text
