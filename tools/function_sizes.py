#!/usr/bin/env python3
"""function_sizes.py - the largest C functions of the tree, and lines per folder.

    python3 tools/function_sizes.py [N] [DIR ...]   (default: 15, src)

A function is counted from its first line at column 0 (its name and
parameters) to the closing brace at column 0, both included.
"""
import os
import re
import sys

def functions(path):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    out, start, name = [], None, None
    for i, l in enumerate(lines):
        if start is None:
            m = re.match(r"^[A-Za-z_][\w \*]*?\b(\w+)\s*\(", l)
            if m and not l.rstrip().endswith(";") and not l.startswith(("typedef", "struct", "static const", "#")):
                # the body opens on this line or within the next few
                for j in range(i, min(i + 6, len(lines))):
                    if lines[j].rstrip().endswith(";"):
                        break
                    if lines[j].rstrip().endswith("{"):
                        start, name = i, m.group(1)
                        break
        elif lines[i].startswith("}"):
            out.append((i - start + 1, name, path))
            start = None
    return out

def main():
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 15
    roots = args or ["src"]
    fs, folders = [], {}
    for root in roots:
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith((".c", ".h")):
                    p = os.path.join(d, f)
                    fs += functions(p)
                    folders[d] = folders.get(d, 0) + sum(1 for _ in open(p, encoding="utf-8", errors="replace"))
    fs.sort(reverse=True)
    print("largest functions (lines):")
    for size, name, path in fs[:n]:
        print(f"  {size:5d}  {name}  ({path})")
    print("lines per folder:")
    for d in sorted(folders):
        print(f"  {folders[d]:6d}  {d}")

main()
