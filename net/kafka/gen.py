#!/usr/bin/env python3
"""net/kafka/gen.py: the Kafka codec's C from net/kafka/messages.def.

    gen.py messages.def messages.h messages.c

Run by meson (net/kafka/meson.build) at build time; its output is not
committed. It writes, for every API of the definition, a C struct per
message and per nested struct, typed init/decode/encode functions, and the
descriptor tables net/kafka/codec.c walks (net/kafka/codec.h says what they
mean). tests/kafka_defs_check.py reads the definition through parse().

The definition's grammar (docs/kafka.md has an example):

    # a comment, to the end of the line
    api <Name> key <n> versions <range> flexible <range|none> [served <range>] [sasl]
    request
      <Field> <type> <versions> [null <range>] [tag <n>] [default <value>]
        <a struct field's own fields, two spaces deeper>
    response
      ...

Types: bool int8 int16 int32 int64 uuid string bytes records, []<type>
for an array of one of them but records, <Struct> or []<Struct> (a name
starting with a capital) for a struct whose fields follow, indented.
Ranges as Kafka writes them: "3+", "0-7", "5", "none". A tagged field is
tagged in all of its versions, which must be flexible ones.
"""
import re
import sys

INT16_MAX = 32767
INTS = {'int8': 1, 'int16': 2, 'int32': 4, 'int64': 8}
PRIMITIVES = ['bool', 'int8', 'int16', 'int32', 'int64', 'uuid', 'string', 'bytes', 'records']


class DefError(Exception):
    pass


def parse_range(text, where):
    """(lo, hi) for "3+", "0-7", "5"; None for "none"."""
    if text == 'none':
        return None
    m = re.fullmatch(r'(\d+)(\+|-(\d+))?', text)
    if not m:
        raise DefError('%s: bad version range %r' % (where, text))
    lo = int(m.group(1))
    if m.group(2) == '+':
        return (lo, INT16_MAX)
    hi = int(m.group(3)) if m.group(3) else lo
    if hi < lo or hi > INT16_MAX:
        raise DefError('%s: bad version range %r' % (where, text))
    return (lo, hi)


def range_text(r):
    if r is None:
        return 'none'
    if r[1] == INT16_MAX:
        return '%d+' % r[0]
    return '%d' % r[0] if r[0] == r[1] else '%d-%d' % r


def parse_int(text, where):
    try:
        return int(text, 0)
    except ValueError:
        raise DefError('%s: %r is not a number' % (where, text)) from None


def in_range(r, v):
    return r is not None and r[0] <= v <= r[1]


def snake(name):
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name)
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', s)
    return s.lower()


class Field:
    def __init__(self, name, type_, versions, where):
        self.name = name
        self.type = type_
        self.versions = versions
        self.nullable = None
        self.tag = None
        self.default = None
        self.fields = []     # a struct type's fields
        self.where = where
        self.struct = None   # its Struct, once resolved

    @property
    def is_array(self):
        return self.type.startswith('[]')

    @property
    def base(self):
        """The type, or an array's element type."""
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self):
        return self.base not in PRIMITIVES


class Struct:
    def __init__(self, name, cname, fields):
        self.name = name     # Kafka's
        self.cname = cname   # the C struct's tag
        self.fields = fields
        self.wire_min = None


class Message:
    def __init__(self, api, response, fields):
        self.api = api
        self.response = response
        self.name = api.name + ('Response' if response else 'Request')
        self.cname = 'kafka_%s_%s' % (snake(api.name), 'response' if response else 'request')
        self.body = Struct(self.name, self.cname, fields)
        self.fields = fields  # the body's, which parse_def() fills
        self.structs = []  # nested, innermost first


class Api:
    def __init__(self, name, key, versions, flexible, served, sasl, where):
        self.name = name
        self.key = key
        self.versions = versions
        self.flexible = flexible
        self.served = served
        self.sasl = sasl
        self.where = where
        self.request = None
        self.response = None

    def is_flexible(self, v):
        return self.flexible is not None and v >= self.flexible[0]


def parse_field(words, where):
    if len(words) < 3:
        raise DefError('%s: a field needs a name, a type and versions' % where)
    name, type_, versions = words[:3]
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9]*', name):
        raise DefError('%s: bad field name %r' % (where, name))
    f = Field(name, type_, parse_range(versions, where), where)
    if f.versions is None:
        raise DefError('%s: a field needs versions' % where)
    rest = words[3:]
    while rest:
        if len(rest) < 2:
            raise DefError('%s: %r wants a value' % (where, rest[0]))
        key, value = rest[0], rest[1]
        rest = rest[2:]
        if key == 'null':
            f.nullable = parse_range(value, where)
        elif key == 'tag':
            f.tag = parse_int(value, where)
            if f.tag < 0:
                raise DefError('%s: tags are >= 0' % where)
        elif key == 'default':
            f.default = value
        else:
            raise DefError('%s: unknown attribute %r' % (where, key))
    return f


def parse_def(path, parse_api, parse_message, parse_field, field_children):
    """The APIs of the definition file at path, the reading both of
    nagare's protocols share (this file's and net/proto_gen.py's): comments
    (# ...) and blank lines left out, 'api ...' lines (parse_api(words,
    where) makes each), 'request' and 'response' under one
    (parse_message(api, words, where) makes it, with .fields), and fields
    two spaces deeper per level under a message or a field
    (parse_field(words, where); field_children(f): the list f's own fields
    go in, None when it takes none). DefError on anything else."""
    apis = []
    api = None
    stack = None  # [(indent, fields list)] of the message being read
    with open(path) as fh:
        for n, raw in enumerate(fh, 1):
            where = '%s:%d' % (path, n)
            line = raw.split('#', 1)[0].rstrip()
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip(' '))
            words = line.split()
            if indent == 0 and words[0] == 'api':
                api = parse_api(words, where)
                apis.append(api)
                stack = None
            elif indent == 0 and words[0] in ('request', 'response'):
                if api is None or getattr(api, words[0]) is not None:
                    raise DefError('%s: %s out of place' % (where, words[0]))
                m = parse_message(api, words, where)
                setattr(api, words[0], m)
                stack = [(0, m.fields)]
            elif indent > 0 and stack is not None:
                while stack[-1][0] >= indent:
                    stack.pop()
                if indent != stack[-1][0] + 2:
                    raise DefError('%s: bad indentation' % where)
                if stack[-1][1] is None:
                    raise DefError('%s: fields under a field that takes none' % where)
                f = parse_field(words, where)
                stack[-1][1].append(f)
                stack.append((indent, field_children(f)))
            else:
                raise DefError('%s: cannot read %r' % (where, line.strip()))
    return apis


def parse_message(api, words, where):
    if len(words) != 1:
        raise DefError('%s: cannot read %r' % (where, ' '.join(words)))
    return Message(api, words[0] == 'response', [])


def parse(path):
    """The APIs of the definition at path, checked (DefError if not)."""
    apis = parse_def(path, parse_api, parse_message, parse_field,
                     lambda f: f.fields if f.is_struct else None)
    for a in apis:
        check_api(a)
    return apis


def parse_api(words, where):
    if len(words) < 8 or words[2] != 'key' or words[4] != 'versions' or words[6] != 'flexible':
        raise DefError('%s: api <Name> key <n> versions <range> flexible <range>' % where)
    served = None
    sasl = False
    rest = words[8:]
    while rest:
        if rest[0] == 'sasl':
            sasl = True
            rest = rest[1:]
        elif rest[0] == 'served' and len(rest) >= 2:
            served = parse_range(rest[1], where)
            rest = rest[2:]
        else:
            raise DefError('%s: unknown api attribute %r' % (where, rest[0]))
    versions = parse_range(words[5], where)
    flexible = parse_range(words[7], where)
    return Api(words[1], parse_int(words[3], where), versions, flexible, served or versions, sasl,
               where)


def check_api(api):
    if api.request is None or api.response is None:
        raise DefError('%s: %s needs a request and a response' % (api.where, api.name))
    if api.flexible is not None and api.flexible[1] != INT16_MAX:
        raise DefError('%s: flexible versions must be "N+"' % api.where)
    if not (api.versions[0] <= api.served[0] <= api.versions[1] and
            api.served[1] in (api.versions[1], INT16_MAX)):
        raise DefError('%s: served must be the end of versions, as "N+"' % api.where)
    for msg in (api.request, api.response):
        resolve(api, msg, msg.body)


def versions_of(api, f):
    """The versions of api in which f exists."""
    return [v for v in range(api.versions[0], api.versions[1] + 1) if in_range(f.versions, v)]


def resolve(api, msg, s):
    tags = []
    cnames = {}
    for f in s.fields:
        where = f.where
        if f.base == 'records' and f.is_array:
            raise DefError('%s: no arrays of records' % where)
        if f.is_struct:
            if not re.fullmatch(r'[A-Z][A-Za-z0-9]*', f.base):
                raise DefError('%s: unknown type %r' % (where, f.type))
            if not f.fields:
                raise DefError('%s: struct %s has no fields' % (where, f.base))
        elif f.fields:
            raise DefError('%s: a %s has no fields' % (where, f.type))
        if f.nullable is not None and not (f.is_array or f.base in ('string', 'bytes', 'records')):
            raise DefError('%s: only strings, bytes, records and arrays are nullable' % where)
        if f.tag is not None:
            if not all(api.is_flexible(v) for v in versions_of(api, f)):
                raise DefError('%s: tagged in a version that is not flexible' % where)
            if tags and f.tag <= tags[-1]:
                raise DefError('%s: tags must increase within a struct' % where)
            tags.append(f.tag)
        if not versions_of(api, f):
            raise DefError('%s: %s exists in none of the api\'s versions' % (where, f.name))
        check_default(f)
        c = snake(f.name)
        if c in cnames:
            raise DefError('%s: %s and %s are both %s in C' % (where, cnames[c], f.name, c))
        cnames[c] = f.name
        if f.is_struct:
            cname = struct_cname(api, msg, f.base)
            if any(x.cname == cname for x in msg.structs):
                raise DefError('%s: struct %s defined twice' % (where, f.base))
            f.struct = Struct(f.base, cname, f.fields)
            resolve(api, msg, f.struct)
            msg.structs.append(f.struct)
            if f.is_array:
                f.struct.wire_min = min(wire_min(api, f.struct, v) for v in versions_of(api, f))
                if f.struct.wire_min < 1:
                    raise DefError('%s: an element of %s can take no bytes' % (where, f.name))
            else:
                f.struct.wire_min = 0
    msg.body.wire_min = 0


def check_default(f):
    d = f.default
    if d is None:
        return
    if d == 'null':
        if not (f.is_array or f.base in ('string', 'bytes', 'records')) or f.nullable is None:
            raise DefError('%s: default null for a field that is never null' % f.where)
    elif f.is_array or f.is_struct or f.base not in list(INTS) + ['bool']:
        raise DefError('%s: only integers, bools and null have defaults here' % f.where)
    elif f.base == 'bool':
        if d not in ('true', 'false'):
            raise DefError('%s: a bool default is true or false' % f.where)
    else:
        v = parse_int(d, f.where)
        bits = 8 * INTS[f.base]
        if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
            raise DefError('%s: default %s out of range' % (f.where, d))


def struct_cname(api, msg, name):
    for prefix in (msg.name, api.name):
        if name.startswith(prefix) and name[len(prefix):][:1].isupper():
            name = name[len(prefix):]
            break
    return '%s_%s' % (msg.cname, snake(name))


def wire_min(api, s, v):
    """Fewest bytes struct s takes at version v."""
    flex = api.is_flexible(v)
    n = 1 if flex else 0
    for f in s.fields:
        if f.tag is not None or not in_range(f.versions, v):
            continue
        if f.is_array:
            n += 1 if flex else 4
        elif f.is_struct:
            n += wire_min(api, f.struct, v)
        elif f.base in INTS:
            n += INTS[f.base]
        else:
            n += {'bool': 1, 'uuid': 16, 'string': 1 if flex else 2,
                  'bytes': 1 if flex else 4, 'records': 1 if flex else 4}[f.base]
    return n


# ---- C ----

C_TYPES = {'bool': 'bool', 'int8': 'int8_t', 'int16': 'int16_t', 'int32': 'int32_t',
           'int64': 'int64_t', 'uuid': 'struct kw_uuid', 'string': 'struct kw_str',
           'bytes': 'struct kw_bytes', 'records': 'struct kw_records'}


def c_type(f):
    return 'struct %s' % f.struct.cname if f.is_struct else C_TYPES[f.base]


def c_struct(s, out):
    out.append('struct %s {' % s.cname)
    for f in s.fields:
        vers = 'v%s' % range_text(f.versions)
        if f.nullable is not None:
            vers += ', null v%s' % range_text(f.nullable)
        if f.tag is not None:
            vers += ', tag %d' % f.tag
        if f.default is not None:
            vers += ', default %s' % f.default
        if f.is_array:
            out.append('    struct {')
            out.append('        %s *items;' % c_type(f))
            out.append('        int32_t count;')
            out.append('    } %s; /* %s */' % (snake(f.name), vers))
        else:
            out.append('    %s %s; /* %s */' % (c_type(f), snake(f.name), vers))
    out.append('};')
    out.append('')


def kt(base):
    return 'KAFKA_T_STRUCT' if base not in PRIMITIVES else 'KAFKA_T_' + base.upper()


def c_versions(r):
    return '{1, 0}' if r is None else '{%d, %d}' % (r[0], min(r[1], INT16_MAX))


def c_descriptor(api, s, out):
    out.append('static const struct kafka_field %s_fields[] = {' % s.cname)
    for f in s.fields:
        m = snake(f.name)
        items = ['.name = "%s"' % m]
        if f.is_array:
            items += ['.offset = offsetof(struct %s, %s.items)' % (s.cname, m),
                      '.count_offset = offsetof(struct %s, %s.count)' % (s.cname, m),
                      '.type = KAFKA_T_ARRAY', '.elem = %s' % kt(f.base)]
        else:
            items += ['.offset = offsetof(struct %s, %s)' % (s.cname, m), '.type = %s' % kt(f.base)]
        items += ['.versions = %s' % c_versions(f.versions),
                  '.nullable = %s' % c_versions(f.nullable),
                  '.tag = %d' % (f.tag if f.tag is not None else -1)]
        if f.default == 'null':
            items.append('.default_null = true')
        elif f.default is not None:
            items.append('.default_int = %s' % c_int(f))
        if f.is_struct:
            items.append('.sub = &%s_desc' % f.struct.cname)
        out.append('    {%s},' % ', '.join(items))
    out.append('};')
    out.append('static const struct kafka_struct %s_desc = {' % s.cname)
    out.append('    .name = "%s",' % s.name)
    out.append('    .size = sizeof(struct %s),' % s.cname)
    out.append('    .wire_min = %d,' % s.wire_min)
    out.append('    .field_count = %d,' % len(s.fields))
    out.append('    .fields = %s_fields,' % s.cname)
    out.append('};')
    if s.wire_min > 0:
        out.append('static_assert(sizeof(struct %s) <= KW_ARENA_ELEM_BYTES_PER_WIRE_BYTE * %d,'
                   % (s.cname, s.wire_min))
        out.append('              "%s: within the arena bound (net/kafka/wire.h)");' % s.name)
    out.append('')


def c_int(f):
    if f.base == 'bool':
        return '1' if f.default == 'true' else '0'
    v = int(f.default, 0)
    if f.base == 'int64':
        return 'INT64_MIN' if v == -(1 << 63) else 'INT64_C(%d)' % v
    return 'INT32_MIN' if v == -(1 << 31) else '%d' % v


def c_msg(api, msg, h, c):
    h.append('/* %s */' % msg.name)
    for s in msg.structs:
        c_struct(s, h)
    c_struct(msg.body, h)
    name = msg.cname
    h.append('extern const struct kafka_msg %s_msg;' % name)
    h.append('static inline void %s_init(struct %s *m) { kafka_init(&%s_msg, m); }'
             % (name, name, name))
    h.append('static inline MUST_USE int %s_decode(struct rd *r, int16_t version, struct kw_arena *a,'
             % name)
    h.append('                                     struct %s *out)' % name)
    h.append('{')
    h.append('    return kafka_decode(&%s_msg, r, version, a, out);' % name)
    h.append('}')
    h.append('static inline MUST_USE int %s_encode(struct kw_wr *w, int16_t version,' % name)
    h.append('                                     const struct %s *m)' % name)
    h.append('{')
    h.append('    return kafka_encode(&%s_msg, w, version, m);' % name)
    h.append('}')
    h.append('')
    for s in msg.structs:
        c_descriptor(api, s, c)
    c_descriptor(api, msg.body, c)
    c.append('const struct kafka_msg %s_msg = {' % name)
    c.append('    .name = "%s",' % msg.name)
    c.append('    .api_key = %d,' % api.key)
    c.append('    .response = %s,' % ('true' if msg.response else 'false'))
    c.append('    .versions = %s,' % c_versions(api.versions))
    c.append('    .flexible_min = %s,' % (api.flexible[0] if api.flexible else 'INT16_MAX'))
    c.append('    .body = &%s_desc,' % name)
    c.append('};')
    c.append('')


def generate(apis, def_path):
    head = '/* Generated by net/kafka/gen.py from %s: do not edit. */' % def_path
    h = [head, '#ifndef NAGARE_NET_KAFKA_MESSAGES_H', '#define NAGARE_NET_KAFKA_MESSAGES_H',
         '#ifndef NAGARE_NET_KAFKA_CODEC_H', '#error "include net/kafka/codec.h"', '#endif', '',
         '/* The keys of the APIs nagare defines. */', 'enum kafka_api_key {']
    by_key = sorted(apis, key=lambda a: a.key)
    keys = set()
    for a in by_key:
        if a.key in keys:
            raise DefError('%s: key %d defined twice' % (a.where, a.key))
        keys.add(a.key)
        h.append('    KAFKA_API_%s = %d,' % (snake(a.name).upper(), a.key))
    h += ['};', '', '/* Entries of kafka_apis[]. */', '#define KAFKA_API_COUNT %d' % len(apis), '']
    c = [head, '#include <stddef.h>', '#include <stdint.h>', '', '#include "net/kafka/codec.h"', '']
    for a in apis:
        h.append('/* ---- %s: key %d, versions %s, flexible %s ---- */'
                 % (a.name, a.key, range_text(a.versions), range_text(a.flexible)))
        h.append('')
        c_msg(a, a.request, h, c)
        c_msg(a, a.response, h, c)
    c.append('const struct kafka_api kafka_apis[] = {')
    for a in by_key:
        c.append('    {.key = %d, .name = "%s", .versions = %s, .flexible_min = %s, .served_min = %d,'
                 % (a.key, a.name, c_versions(a.versions),
                    a.flexible[0] if a.flexible else 'INT16_MAX', a.served[0]))
        c.append('     .sasl = %s, .request = &%s_msg, .response = &%s_msg},'
                 % ('true' if a.sasl else 'false', a.request.cname, a.response.cname))
    c.append('};')
    c.append('static_assert(ARRAY_LEN(kafka_apis) == KAFKA_API_COUNT, "one entry per api");')
    h.append('#endif')
    return '\n'.join(h) + '\n', '\n'.join(c) + '\n'


def main(argv):
    if len(argv) != 4:
        sys.stderr.write('usage: gen.py messages.def messages.h messages.c\n')
        return 2
    try:
        apis = parse(argv[1])
        h, c = generate(apis, 'net/kafka/messages.def')
    except DefError as e:
        sys.stderr.write('gen.py: %s\n' % e)
        return 1
    with open(argv[2], 'w') as fh:
        fh.write(h)
    with open(argv[3], 'w') as fh:
        fh.write(c)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
