#!/usr/bin/env python3
"""tests/proto_docs_check.py: docs/protocol.md against net/proto.def.

    proto_docs_check.py <proto.def> <protocol.md>

The "Api keys" table must list every api of the definition, by key, with
its name and exactly its versions, and no other key with a version; each
api has its section, "### <Name> (key <n>)". Exits 0 when they agree, 1
naming each difference.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'net'))
import proto_gen  # noqa: E402  (net/proto_gen.py: the definition's one parser)


def table_rows(md):
    """(key, name, versions text) of the rows of the "Api keys" table."""
    section = md.split('\n## Api keys\n', 1)[1].split('\n## ', 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 3 and re.fullmatch(r'\d+', cells[0]):
            rows.append((int(cells[0]), cells[1], cells[2]))
    return rows


def main(argv):
    if len(argv) != 3:
        sys.stderr.write('usage: proto_docs_check.py proto.def protocol.md\n')
        return 2
    apis = {a.key: a for a in proto_gen.parse(argv[1])}
    with open(argv[2]) as fh:
        md = fh.read()
    bad = []
    seen = set()
    for key, name, versions in table_rows(md):
        a = apis.get(key)
        if a is None:
            if versions:
                bad.append('Api keys: key %d (%s) has versions, the def has no such api' % (key, name))
            continue
        seen.add(key)
        want = ', '.join(str(v) for v in range(a.vmax + 1))
        if name != a.name:
            bad.append('Api keys: key %d is %s, the def says %s' % (key, name, a.name))
        if versions != want:
            bad.append('Api keys: %s versions "%s", the def says "%s"' % (a.name, versions, want))
    for key, a in sorted(apis.items()):
        if key not in seen:
            bad.append('Api keys: no row for %s (key %d)' % (a.name, key))
        if '\n### %s (key %d)\n' % (a.name, key) not in md:
            bad.append('no section "### %s (key %d)"' % (a.name, key))
    for b in bad:
        print('protocol.md: ' + b)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
