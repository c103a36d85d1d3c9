"""The contracts that keep the codebase changeable: no import cycles, each registry complete and
every entry implementing its protocol, and no route without its authorisation dependency."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import get_args

import pytest
from fastapi.routing import APIRoute

from rag import backends
from rag.backends import Backend, backend_class
from rag.config import load_settings

from .support.profiles import PROJECT

PACKAGES = ("rag", "ingest")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT / package).rglob("*.py"):
            parts = list(path.relative_to(PROJECT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports: every import statement, at module level, inside
    functions or under TYPE_CHECKING; importing a.b.c also runs a and a.b."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                # The packages above the target run first; a package's own __init__ importing its
                # submodules (the re-export shape) is not a cycle.
                parts = target.split(".")
                for depth in range(1, len(parts) + 1):
                    ancestor = ".".join(parts[:depth])
                    if ancestor in known and ancestor != name and not name.startswith(ancestor + "."):
                        graph[name].add(ancestor)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


class TestImports:
    def test_no_import_cycles_among_rag_and_ingest(self) -> None:
        assert cycles(import_graph(modules())) == []

    def test_the_check_finds_a_cycle(self, tmp_path: Path) -> None:
        graph = {"rag.a": {"rag.b"}, "rag.b": {"rag.c"}, "rag.c": {"rag.a"}, "rag.d": {"rag.a"}}
        assert cycles(graph) == [["rag.a", "rag.b", "rag.c"]]

    def test_the_graph_sees_imports_inside_functions_and_type_checking(self) -> None:
        graph = import_graph(modules())
        assert "rag.embedding" in graph["rag.generate"]  # under TYPE_CHECKING
        assert "ingest.manifest" in graph["rag.cli"]  # inside a command

    def test_product_code_never_imports_test_scaffolding(self) -> None:
        for name, path in modules().items():
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {
                alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
            } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert not any(m == "tests" or m.startswith("tests.") for m in imported), name

    def test_the_qwen3_module_imports_nothing_from_rag(self) -> None:
        assert import_graph(modules())["rag.qwen3"] <= {"rag"}


REGISTRIES = [
    ("embedding", backends.EmbeddingBackend, backends.EMBEDDERS, "rag.embedding", "Embedder"),
    ("rerank", backends.RerankBackend, backends.RERANKERS, "rag.rerank", "Reranker"),
    ("generate", backends.GenerateBackend, backends.GENERATORS, "rag.generate", "Generator"),
]


@pytest.mark.parametrize(("stage", "names", "table", "module", "protocol"), REGISTRIES, ids=[r[0] for r in REGISTRIES])
class TestBackendRegistry:
    def test_the_names_configuration_accepts_are_the_table_keys(self, stage, names, table, module, protocol) -> None:
        assert set(get_args(names)) == set(table)

    def test_every_backend_implements_its_protocol_and_builds_without_io(
        self, stage, names, table, module, protocol, minilm
    ) -> None:
        declared = getattr(__import__(module, fromlist=[protocol]), protocol)
        members = {name for name in dir(declared) if not name.startswith("_")} | set(inspect.get_annotations(Backend))
        for name, reference in table.items():
            cls = backend_class(reference)
            # Not issubclass(): a protocol with data members refuses it, even for an explicit subclass.
            assert declared in cls.__mro__, f"{reference} does not subclass {protocol}"
            assert not inspect.isabstract(cls), f"{reference} leaves abstract members"
            section = getattr(load_settings(environ={f"RAG_{stage.upper()}__BACKEND": name}), stage)
            backend = cls(section, embedder=minilm) if stage == "generate" else cls(section)
            assert backend.name == name
            missing = [m for m in members if inspect.getattr_static(backend, m, None) is None]
            assert not missing, f"{reference} lacks {missing}"


def test_every_route_declares_its_authorisation(settings) -> None:
    from rag.api import create_app

    public = {"/healthz", "/"}
    routes = []
    for route in create_app(settings).routes:
        routes += getattr(getattr(route, "original_router", None), "routes", [route])
    api_routes = [r for r in routes if isinstance(r, APIRoute) and r.include_in_schema and r.path not in public]
    assert len(api_routes) >= 12

    def authorised(dependant) -> bool:
        return any(
            "require.<locals>.authorized" in getattr(d.call, "__qualname__", "") or authorised(d)
            for d in dependant.dependencies
        )

    unguarded = [f"{sorted(r.methods)} {r.path}" for r in api_routes if not authorised(r.dependant)]
    assert unguarded == []
