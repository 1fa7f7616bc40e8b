#!/usr/bin/env python3
"""tests/kafka_defs_check.py: net/kafka/messages.def against Kafka's own
message definitions.

    kafka_defs_check.py <messages.def> <kafka-messages dir>

For every API of the definition and every version nagare defines, the
request and the response must have, at every level, the same fields as
Kafka's JSON (clients/src/main/resources/common/message/*.json): same names
in the same order, same types, same presence and nullability in that
version, same tags, same defaults, and the same flexible versions. A
version the JSON no longer defines (Kafka 4 dropped many old ones) is said
and skipped. Exits 0 when all agree, 1 naming each difference, 77 (meson's
skip) when the JSON folder is missing.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'net', 'kafka'))
import gen  # noqa: E402  (net/kafka/gen.py: the definition's one parser)


def load_json(path):
    """A Kafka message JSON file: JSON with // comments."""
    with open(path) as fh:
        text = fh.read()
    return json.loads(re.sub(r'^\s*//.*$|(?<=[,{\[\s])//.*$', '', text, flags=re.M))


def in_json_range(text, v):
    return gen.in_range(gen.parse_range(text, 'json') if text else None, v)


def json_default(f):
    """A JSON field's default, normalized as the definition writes it (None
    for the type's zero: 0, false, "", empty)."""
    d = f.get('default')
    if d is None:
        return None
    if isinstance(d, bool):
        d = 'true' if d else 'false'
    d = str(d)
    if d in ('0', 'false', ''):
        return None
    base = f['type'][2:] if f['type'].startswith('[]') else f['type']
    if base in gen.INTS:
        return int(d, 0)
    return d


def def_default(f):
    d = f.default
    if d is None or d in ('0', 'false'):
        return None
    return int(d, 0) if f.base in gen.INTS else d


class Checker:
    def __init__(self):
        self.errors = []
        self.skipped = []
        self.versions_checked = 0

    def error(self, where, text):
        self.errors.append('%s: %s' % (where, text))

    def fields(self, where, v, ours, theirs, common):
        """Compares the fields of one struct at version v."""
        ours = [f for f in ours if gen.in_range(f.versions, v)]
        theirs = [f for f in theirs if in_json_range(f['versions'], v)]
        names = [f.name for f in ours]
        their_names = [f['name'] for f in theirs]
        if names != their_names:
            self.error(where, 'v%d fields %s, Kafka has %s' % (v, names, their_names))
            return
        for f, t in zip(ours, theirs):
            at = '%s.%s v%d' % (where, f.name, v)
            if f.type != t['type']:
                self.error(at, 'type %s, Kafka has %s' % (f.type, t['type']))
                continue
            if 'flexibleVersions' in t:
                self.error(at, 'Kafka overrides its flexible versions: not supported')
            nullable = gen.in_range(f.nullable, v)
            if nullable != in_json_range(t.get('nullableVersions'), v):
                self.error(at, 'nullable %s, Kafka says %s' % (nullable, not nullable))
            tag = f.tag if f.tag is not None else None
            their_tag = t.get('tag') if in_json_range(t.get('taggedVersions'), v) else None
            if tag != their_tag:
                self.error(at, 'tag %s, Kafka has %s' % (tag, their_tag))
            if def_default(f) != json_default(t):
                self.error(at, 'default %s, Kafka has %s' % (def_default(f), json_default(t)))
            if f.is_struct:
                sub = t.get('fields')
                if sub is None:
                    sub = common.get(f.base, [])
                self.fields('%s.%s' % (where, f.name), v, f.fields, sub, common)

    def message(self, api, msg, path):
        if not os.path.exists(path):
            self.error(msg.name, 'Kafka has no %s' % path)
            return
        j = load_json(path)
        kind = 'response' if msg.response else 'request'
        if j.get('apiKey') != api.key or j.get('type') != kind:
            self.error(msg.name, 'key %d %s, Kafka has key %s %s'
                       % (api.key, kind, j.get('apiKey'), j.get('type')))
            return
        common = {c['name']: c['fields'] for c in j.get('commonStructs', [])}
        for v in range(api.versions[0], api.versions[1] + 1):
            if not in_json_range(j['validVersions'], v):
                self.skipped.append('%s v%d' % (msg.name, v))
                continue
            self.versions_checked += 1
            if api.is_flexible(v) != in_json_range(j.get('flexibleVersions', 'none'), v):
                self.error(msg.name, 'v%d flexible %s, Kafka says %s'
                           % (v, api.is_flexible(v), not api.is_flexible(v)))
            self.fields(msg.name, v, msg.body.fields, j['fields'], common)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write('usage: kafka_defs_check.py messages.def kafka-messages-dir\n')
        return 2
    def_path, json_dir = argv[1], argv[2]
    if not os.path.isdir(json_dir):
        print('skipped: no Kafka message definitions at %s (meson option kafka_messages)'
              % json_dir)
        return 77
    try:
        apis = gen.parse(def_path)
    except gen.DefError as e:
        print('messages.def: %s' % e)
        return 1
    c = Checker()
    for api in apis:
        for msg in (api.request, api.response):
            c.message(api, msg, os.path.join(json_dir, msg.name + '.json'))
    for s in c.skipped:
        print('skipped (Kafka no longer defines it): %s' % s)
    for e in c.errors:
        print('DIFFERS %s' % e)
    print('%d apis, %d message versions checked against %s: %d differences, %d skipped'
          % (len(apis), c.versions_checked, json_dir, len(c.errors), len(c.skipped)))
    return 1 if c.errors else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
