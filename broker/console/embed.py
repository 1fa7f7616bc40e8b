#!/usr/bin/env python3
"""broker/console/embed.py OUT.c FILE... — the web console's files as C
arrays (broker/console_assets.h), so nagared serves them from the binary:
no install step, nothing read from disk at run time. index.html is served
at "/", every other file at "/<its name>"."""
import os
import sys

TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8"}


def main():
    out, files = sys.argv[1], sys.argv[2:]
    lines = ['/* Made by broker/console/embed.py from broker/console/: do not edit. */',
             '#include "broker/console_assets.h"', '']
    entries = []
    for i, path in enumerate(files):
        name = os.path.basename(path)
        data = open(path, "rb").read()
        body = ",".join(str(b) for b in data)
        lines.append("static const unsigned char asset%d[] = {%s};" % (i, body))
        url = "/" if name == "index.html" else "/" + name
        entries.append('    {"%s", "%s", asset%d, sizeof(asset%d)},'
                       % (url, TYPES[os.path.splitext(name)[1]], i, i))
    lines += ["", "const struct console_asset console_assets[] = {"] + entries + ["};",
              "const size_t console_asset_count = %d;" % len(files), ""]
    open(out, "w").write("\n".join(lines))


if __name__ == "__main__":
    main()
