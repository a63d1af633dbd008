"""No import cycle anywhere in autolog/ (issue 15), function-level imports counted.

The layers are import-linter contracts in pyproject.toml (``lint-imports`` in
the README's test command); a layers contract is checked between packages, so
two modules of one layer could still import each other. This test looks at
every module of ``autolog`` one by one, with grimp (import-linter's own graph).

A lazy import inside a function is counted: it runs, later, and a module that
needs a module above it is a cycle that only waits for the right call order
(the ones broken here were all lazy). Imports under ``TYPE_CHECKING`` are not
counted: they never run.
"""

from __future__ import annotations

import grimp


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_three_modules_and_ignores_a_chain():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_in_autolog_lazy_imports_counted():
    graph = grimp.build_graph("autolog", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m == "autolog" or m.startswith("autolog.")}
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    found = cycles(edges)
    lines = []
    for component in found:
        members = set(component)
        for importer in component:
            for imported in sorted(edges[importer] & members):
                details = graph.get_import_details(importer=importer, imported=imported)
                where = ", ".join(str(d["line_number"]) for d in details)
                lines.append(f"{importer} -> {imported} (line {where})")
    assert not found, "import cycles in autolog/:\n" + "\n".join(lines)
    assert len(modules) > 50  # the whole package was read, not an empty graph
