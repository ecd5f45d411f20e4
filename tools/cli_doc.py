#!/usr/bin/env python3
"""cli_doc.py - refresh the option blocks of docs/cli.md from the tool's --help.

    python3 tools/cli_doc.py [./flowmatch] [docs/cli.md]

Under each "## COMMAND" heading the first ```text block is replaced by the
option lines of `flowmatch COMMAND --help` (the lines that start with "  --").
"""
import re
import subprocess
import sys

cli = sys.argv[1] if len(sys.argv) > 1 else "./flowmatch"
doc = sys.argv[2] if len(sys.argv) > 2 else "docs/cli.md"
text = open(doc).read()
out, pos, changed = [], 0, 0
for m in re.finditer(r"^## (\w+)\n", text, re.M):
    cmd = m.group(1)
    help_text = subprocess.run([cli, cmd, "--help"], capture_output=True, text=True)
    if help_text.returncode != 0:
        continue
    opts = [l for l in help_text.stdout.splitlines() if l.startswith("  --")]
    start = text.find("```text\n", m.end())
    nxt = text.find("\n## ", m.end())
    if start < 0 or (nxt >= 0 and start > nxt) or not opts:
        continue
    end = text.find("```", start + 8)
    out.append(text[pos:start + 8])
    out.append("\n".join(opts) + "\n")
    pos = end
    changed += 1
out.append(text[pos:])
open(doc, "w").write("".join(out))
print(f"{doc}: {changed} option blocks refreshed")
