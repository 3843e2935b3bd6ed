#!/usr/bin/env python3
"""Module cycles inside each crate: which files of one crate use each other in a circle.

    scripts/module-cycles.py [CRATE…]      # default: every crate under crates/

Reads `crate::…` and `super::…` paths (in `use` lines and in code) of every `src/**/*.rs`,
resolves each to the file that defines the module it names, and prints every strongly
connected set of two or more files. Left out, as they are not one module depending on
another: a parent's `mod`/`pub use` of its own children (re-exports), and `#[cfg(test)]`
modules (a test's `use super::*` is its own file). Exit 1 when a cycle is found.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(crate|super)((?:::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}", re.S)


def module_of(src: Path, f: Path) -> tuple:
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def resolve(mods: dict, path: tuple):
    """The file of the longest prefix of `path` that is a module."""
    for n in range(len(path), -1, -1):
        if path[:n] in mods:
            return mods[path[:n]]
    return None


def code_of(text: str) -> str:
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def edges(crate: Path):
    src = crate / "src"
    files = sorted(src.rglob("*.rs"))
    mods = {module_of(src, f): f for f in files}
    out = {f: set() for f in files}
    for f in files:
        me = module_of(src, f)
        is_parent = f.name in ("mod.rs", "lib.rs", "main.rs")
        for line in code_of(f.read_text()).splitlines():
            s = line.strip()
            if s.startswith("//"):
                continue
            reexport = s.startswith(("pub use", "pub(crate) use", "mod ", "pub mod "))
            refs = []
            for m in GROUP.finditer(s):
                base = [p for p in m.group(2).split("::") if p]
                for item in m.group(3).split(","):
                    item = item.strip().split("::")[0].split(" as ")[0].strip()
                    if item and item != "self":
                        refs.append((m.group(1), base + [item]))
            for m in PATH.finditer(s):
                refs.append((m.group(1), [p.strip() for p in m.group(2).split("::") if p.strip()]))
            for kind, parts in refs:
                if kind == "crate":
                    target = tuple(parts)
                else:
                    # `super` of module a::b (a/b.rs or a/b/mod.rs) is a; each more, one up.
                    up = me[:-1]
                    while parts and parts[0] == "super":
                        parts, up = parts[1:], up[:-1]
                    target = up + tuple(parts)
                dest = resolve(mods, target)
                if dest is None or dest == f:
                    continue
                child = module_of(src, dest)[: len(me)] == me and is_parent
                if reexport and child:
                    continue
                out[f].add(dest)
    return out


def cycles(graph: dict):
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return sccs


def main():
    names = sys.argv[1:] or sorted(p.name for p in (ROOT / "crates").iterdir() if (p / "src").is_dir())
    found = 0
    for name in names:
        crate = ROOT / "crates" / name
        graph = edges(crate)
        # A crate of no files, or one whose paths resolved to no file, would pass on nothing.
        if not graph:
            print(f"{name}: no source files under {crate / 'src'}", file=sys.stderr)
            return 2
        if len(graph) > 1 and not any(graph.values()):
            print(f"{name}: {len(graph)} files but no crate:: or super:: path resolved", file=sys.stderr)
            return 2
        for scc in cycles(graph):
            found += 1
            files = [str(f.relative_to(ROOT)) for f in scc]
            print(f"{name}: cycle of {len(files)} files:")
            for f in scc:
                inside = sorted(str(g.relative_to(ROOT)) for g in graph[f] if g in scc)
                print(f"  {f.relative_to(ROOT)} -> {', '.join(inside)}")
    print(f"{found} module cycle(s) in {len(names)} crate(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
