"""The dependency graph of a plan: levels (Kahn's algorithm) and cycles.

Both functions take node ids in plan order and, per node, the ids it depends
on. Dependencies must be known nodes other than the node itself; callers
report unknown ids and self-dependencies before they get here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def dependency_levels(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Level k holds the nodes whose dependencies all lie in levels below k, in plan order.

    Nodes on or behind a cycle never become ready and are left out.
    """
    position = {node: index for index, node in enumerate(order)}
    waiting = {node: len(set(deps.get(node, ()))) for node in order}
    dependents: dict[str, list[str]] = {node: [] for node in order}
    for node in order:
        for dep in set(deps.get(node, ())):
            dependents[dep].append(node)
    levels: list[list[str]] = []
    level = [node for node in order if waiting[node] == 0]
    while level:
        levels.append(level)
        ready: list[str] = []
        for node in level:
            for child in dependents[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        level = sorted(ready, key=position.__getitem__)
    return levels


def find_cycles(order: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per group of stuck nodes, e.g. ['a', 'b', 'a'] when a depends on b and b on a.

    Every node Kahn's algorithm could not place has an unplaced dependency, so
    following those from any stuck node must come back to a node already on the
    path: that loop is a cycle. Each walk stops at nodes an earlier walk saw,
    so a cycle is reported once however many nodes hang behind it.
    """
    placed = {node for level in dependency_levels(order, deps) for node in level}
    position = {node: index for index, node in enumerate(order)}
    seen: set[str] = set()
    cycles: list[list[str]] = []
    for start in order:
        path: list[str] = []
        on_path: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in placed and node not in seen:
            on_path[node] = len(path)
            path.append(node)
            seen.add(node)
            node = next((dep for dep in deps.get(node, ()) if dep not in placed), None)
        if node is not None and node in on_path:
            loop = path[on_path[node] :]
            first = min(range(len(loop)), key=lambda i: position[loop[i]])
            loop = loop[first:] + loop[:first]  # start at the earliest task in the plan
            cycles.append([*loop, loop[0]])
    return cycles
