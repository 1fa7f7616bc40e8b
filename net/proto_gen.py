#!/usr/bin/env python3
"""net/proto_gen.py: nagare's own protocol's C from net/proto.def.

    proto_gen.py proto.def proto_def.inc proto_msgs.inc proto_recode.c

Run by meson (net/meson.build) at build time; its output is not committed.

- proto_def.inc, included by net/proto.c after its schema types: the layout
  of every body at every version (struct pfield arrays, deduplicated by
  content), the table of messages by api, version and direction, each api's
  name, highest version and leading name, and static asserts that tie the
  keys to enum proto_api in net/proto.h.
- proto_msgs.inc, included at the end of net/proto.c: the encoders and
  decoders of the messages marked "gen", straight-line C (no interpretation
  per field at run time); net/proto.h declares them.
- proto_recode.c: for every message, a recoder (decode, then encode what was
  decoded through the matching encoder), and proto_recode() dispatching on
  api, version and direction; the hand-written messages' recoders live in
  tests/proto_recode_hand.c. Also what the def says of each api
  (proto_def_apis[]) and sample bodies of every message at every version
  built from the def alone (proto_def_samples[]). fuzz/fuzz_proto.c and
  tests/test_proto_def.c link it.

net/proto.def's head comment gives the grammar. The version ranges are
read by net/kafka/gen.py's parse_range (one reading of "3+", "0-7").
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # nothing written beside the sources
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'kafka'))
from gen import parse_def, parse_range, in_range, snake  # noqa: E402  (net/kafka/gen.py)

PF = {'i8': 'I8', 'bool': 'I8', 'i16': 'I16', 'err': 'ERR', 'i32': 'I32', 'i64': 'I64',
      'str': 'STR', 'bytes': 'BYTES', '[]': 'ARRAY'}
PF_BYTES_MIN = {'I8': 1, 'I16': 2, 'ERR': 2, 'I32': 4, 'I64': 8, 'STR': 2, 'NSTR': 2,
                'BYTES': 4, 'ARRAY': 4, 'NARRAY': 4}
FIXED = {'I8': 1, 'I16': 2, 'ERR': 2, 'I32': 4, 'I64': 8}
LIMIT_MAX = {'TOPICS': 'PROTO_TOPICS_MAX', 'PARTS': 'PROTO_PARTITIONS_MAX',
             'META_PARTS': 'PROTO_PARTITIONS_MAX', 'APIS': 'PROTO_API_RANGES_MAX',
             'GROUPS': 'PROTO_GROUPS_MAX', 'MEMBERS': 'PROTO_GROUP_MEMBERS_MAX',
             'RANGES': 'PROTO_SHARE_RANGES_MAX', 'BROKERS': 'PROTO_BROKERS_MAX',
             'REPLICAS': 'PROTO_REPLICAS_MAX', 'ACLS': 'PROTO_ACLS_MAX', 'USERS': 'PROTO_USERS_MAX'}
LIMITS = list(LIMIT_MAX)
SHAPES = ['names', 'topic_parts', 'topic_err_parts', 'topic_err_cfg_parts', 'create', 'results',
          'topic_parts_any', 'groups', 'describe', 'acls']
CHECKS = ['nonneg', 'positive', 'acks']
SHARED_PARTS = {'part_index', 'part_result', 'part_offset'}
# Names of the generated functions' parameters and locals: a head field
# (a parameter when alone, a local when a bool) may not take one.
RESERVED = {'e', 'w', 'd', 'r', 'x', 'p', 'in', 'out', 'body', 'version', 'correlation_id',
            'client_id', 'rc', 'topics_all'}


class DefError(Exception):
    pass


class Field:
    def __init__(self, name, type_, versions, where):
        self.name = name
        self.type = type_
        self.versions = versions
        self.limit = None
        self.null = False
        self.part = False
        self.elem = None
        self.check = None
        self.struct = None   # an outer array's element: its C struct
        self.fn = None       # ... and the suffix of its encoder's name
        self.default = None  # C value of a field absent from a version, decoded
        self.ids = None      # an array of broker ids: the C member of its count
        self.fields = []
        self.where = where


class Msg:
    def __init__(self, api, response, where):
        self.api = api
        self.response = response
        self.where = where
        self.shapes = []  # [(from version, shape)]
        self.gen = None
        self.check = None  # a predicate in proto.c over the decoded head
        self.fields = []

    @property
    def cname(self):
        return 'proto_%s_%s' % (self.api.cname, 'resp' if self.response else 'req')

    @property
    def dir(self):
        return 'resp' if self.response else 'req'

    def shape(self, v):
        s = None
        for lo, name in self.shapes:
            if v >= lo:
                s = name
        return s


class Api:
    def __init__(self, name, key, vmax, names, cname, where):
        self.name = name
        self.key = key
        self.vmax = vmax
        self.names = names
        self.cname = cname or snake(name)
        self.where = where
        self.request = None
        self.response = None

    @property
    def enum(self):
        return 'PROTO_API_' + snake(self.name).upper()


def parse_field(words, where):
    if len(words) < 2:
        raise DefError('%s: a field needs a name and a type' % where)
    name, type_ = words[0], words[1]
    if not re.fullmatch(r'[a-z][a-z0-9_]*', name):
        raise DefError('%s: bad field name %r' % (where, name))
    if type_ not in PF:
        raise DefError('%s: unknown type %r' % (where, type_))
    rest = words[2:]
    versions = (0, 32767)
    if rest and re.fullmatch(r'\d+(\+|-\d+)?', rest[0]):
        versions = parse_range(rest[0], where)
        rest = rest[1:]
    f = Field(name, type_, versions, where)
    while rest:
        key = rest[0]
        if key == 'null':
            f.null = True
            rest = rest[1:]
        elif key == 'part':
            f.part = True
            rest = rest[1:]
        elif key in ('limit', 'elem', 'check', 'struct', 'fn', 'default', 'ids') and len(rest) >= 2:
            setattr(f, key, rest[1])
            rest = rest[2:]
        else:
            raise DefError('%s: cannot read %r' % (where, key))
    if (f.type == '[]') != (f.limit is not None):
        raise DefError('%s: an array, and only an array, has a limit' % where)
    if f.limit is not None and f.limit not in LIMITS:
        raise DefError('%s: unknown limit %r' % (where, f.limit))
    if f.null and f.type not in ('str', '[]'):
        raise DefError('%s: only strings and arrays may be null' % where)
    if f.ids is not None and (f.type != '[]' or f.limit != 'REPLICAS'):
        raise DefError('%s: ids: an array of broker ids, limit REPLICAS' % where)
    if f.check is not None and f.check not in CHECKS:
        raise DefError('%s: unknown check %r' % (where, f.check))
    if f.check is not None and f.type not in ('i8', 'i16', 'i32', 'i64'):
        raise DefError('%s: checks are on integers' % where)
    return f


def parse_msg_line(api, words, where):
    m = Msg(api, words[0] == 'response', where)
    rest = words[1:]
    while rest:
        if rest[0] == 'shape' and len(rest) >= 2:
            for i, part in enumerate(rest[1].split(',')):
                lo, name = 0, part
                if i > 0:
                    mm = re.fullmatch(r'(\d+)\+:([a-z_]+)', part)
                    if not mm:
                        raise DefError('%s: bad shape %r' % (where, part))
                    lo, name = int(mm.group(1)), mm.group(2)
                if name not in SHAPES:
                    raise DefError('%s: unknown shape %r' % (where, name))
                m.shapes.append((lo, name))
            rest = rest[2:]
        elif rest[0] in ('gen', 'hand'):
            m.gen = rest[0] == 'gen'
            rest = rest[1:]
        elif rest[0] == 'check' and len(rest) >= 2 and re.fullmatch(r'[a-z_]+', rest[1]):
            m.check = rest[1]
            rest = rest[2:]
        else:
            raise DefError('%s: cannot read %r' % (where, rest[0]))
    if m.gen is None:
        raise DefError('%s: say gen or hand' % where)
    return m


def parse(path):
    apis = parse_def(path, parse_api, parse_msg_line, parse_field,
                     lambda f: f.fields if f.type == '[]' else None)
    check(apis)
    return apis


def parse_api(words, where):
    if len(words) < 6 or words[2] != 'key' or words[4] != 'versions':
        raise DefError('%s: api <Name> key <n> versions 0-<max>' % where)
    r = parse_range(words[5], where)
    if r is None or r[0] != 0 or r[1] > 255:
        raise DefError('%s: versions are 0-<max>' % where)
    names, cname = None, None
    rest = words[6:]
    while rest:
        if rest[0] == 'names' and len(rest) >= 2 and rest[1] in ('group', 'topic'):
            names = rest[1]
        elif rest[0] == 'as' and len(rest) >= 2:
            cname = rest[1]
        else:
            raise DefError('%s: cannot read %r' % (where, rest[0]))
        rest = rest[2:]
    return Api(words[1], int(words[3]), r[1], names, cname, where)


def check(apis):
    keys = set()
    for a in apis:
        if a.key in keys:
            raise DefError('%s: key %d twice' % (a.where, a.key))
        keys.add(a.key)
        for m in (a.request, a.response):
            if m is None:
                raise DefError('%s: %s needs a request and a response' % (a.where, a.name))
            for v in range(a.vmax + 1):
                fs = at_version(m.fields, v)
                arrays = [f for f in fs if f.type == '[]']
                if m.shape(v) is not None and not arrays:
                    raise DefError('%s: a shape needs an outer array' % m.where)
                parts = [f for f in walk_fields(fs, v) if f.part]
                if len(parts) > 1:
                    raise DefError('%s: one part array per message' % m.where)
            if m.gen:
                check_gen(m)
            if a.names and (not a.request.fields or a.request.fields[0].type != 'str'):
                raise DefError('%s: names: the request must start with a string' % a.where)


def check_gen(m):
    """The forms the C generator writes (see gen_msgs)."""
    head = [f for f in m.fields if f.type != '[]']
    outer = [f for f in m.fields if f.type == '[]']
    if len(outer) > 1 or (outer and m.fields[-1] is not outer[0]):
        raise DefError('%s: gen: at most one array, last' % m.where)
    if outer and not m.shapes:
        raise DefError('%s: gen: an array needs a shape' % m.where)
    if outer and outer[0].fn is not None and outer[0].struct is None:
        raise DefError('%s: gen: an element with a fn needs its struct' % m.where)
    for f in head:
        if f.type == 'bytes':
            raise DefError('%s: gen: bytes in a head are written by hand' % f.where)
        if f.name in RESERVED:
            raise DefError('%s: gen: %s is a name the generated C uses' % (f.where, f.name))


def at_version(fields, v):
    return [f for f in fields if in_range(f.versions, v)]


def walk_fields(fields, v):
    for f in at_version(fields, v):
        yield f
        yield from walk_fields(f.fields, v)


# ---- schemas ----

class Schemas:
    """Layouts deduplicated by content; content is a tuple of
    (pf type, limit, element content)."""

    def __init__(self):
        self.names = {}   # content -> name
        self.order = []   # contents, children first

    def content(self, fields, v):
        items = []
        for f in at_version(fields, v):
            t = PF[f.type]
            if f.null:
                t = 'N' + t
            if f.type == '[]':
                items.append((t, f.limit, self.content(f.fields, v)))
            else:
                items.append((t, None, None))
        return tuple(items)

    def add(self, content, name):
        for _, _, sub in content:
            if sub is not None:
                self.add(sub, None)
        if content not in self.names:
            self.names[content] = name
            self.order.append(content)
        elif self.names[content] is None:
            self.names[content] = name


def msg_content(S, m, v):
    return S.content(m.fields, v)


def collect(apis):
    S = Schemas()
    explicit = {}
    for a in apis:
        for m in (a.request, a.response):
            for v in range(a.vmax + 1):
                for f in walk_fields(m.fields, v):
                    if f.elem is not None:
                        c = S.content(f.fields, v)
                        if f.elem in explicit and explicit[f.elem] != c:
                            raise DefError('%s: elem %s names two layouts' % (f.where, f.elem))
                        explicit[f.elem] = c
    by_content = {}
    for name, c in explicit.items():
        if c in by_content:
            raise DefError('elem %s and %s name the same layout' % (name, by_content[c]))
        by_content[c] = name
    shared = {explicit[n]: n for n in SHARED_PARTS if n in explicit}
    for a in apis:
        for m in (a.request, a.response):
            for v in range(a.vmax + 1):
                for f in walk_fields(m.fields, v):
                    c = S.content(f.fields, v)
                    if f.part and f.elem is None and c in shared:
                        raise DefError('%s: this element is %s: say "elem %s"'
                                       % (f.where, shared[c], shared[c]))
    for name, c in sorted(explicit.items()):
        S.add(c, 's_' + name)
    for a in apis:
        for m in (a.request, a.response):
            for v in range(a.vmax + 1):
                c = msg_content(S, m, v)
                S.add(c, 's_%s_%s%s' % (a.cname, m.dir, '' if v == 0 else '_v%d' % v))
    n = 0
    for c in S.order:
        if S.names[c] is None:
            n += 1
            S.names[c] = 's_elem_%d' % n
    return S, explicit


def part_content(S, m, v):
    for f in walk_fields(m.fields, v):
        if f.part:
            return S.content(f.fields, v)
    return None


def fixed_bytes(content):
    n = 0
    for t, _, sub in content:
        if t not in FIXED:
            return None
        n += FIXED[t]
    return n


def gen_def(apis, S, explicit):
    out = ['/* Generated by net/proto_gen.py from net/proto.def: do not edit. */', '']
    vmax = max(a.vmax for a in apis)
    out.append('/* Versions any api has; api_version_max[] says which each one speaks. */')
    out.append('#define PROTO_VERSIONS %d' % (vmax + 1))
    out.append('')
    for a in sorted(apis, key=lambda x: x.key):
        out.append('static_assert(%s == %d, "net/proto.def: %s is key %d");'
                   % (a.enum, a.key, a.name, a.key))
    out.append('static_assert(PROTO_API_COUNT == %d, "net/proto.def: one past the highest key");'
               % (max(a.key for a in apis) + 1))
    out.append('')
    for c in S.order:
        items = []
        for t, lim, sub in c:
            if sub is None:
                items.append('F(%s)' % t)
            else:
                items.append('%s(%s, %s)' % ('NARR' if t == 'NARRAY' else 'ARR', lim,
                                             S.names[sub]))
        items.append('END')
        out.append('static const struct pfield %s[] = {%s};' % (S.names[c], ', '.join(items)))
    out.append('')
    for name, c in sorted(explicit.items()):
        n = fixed_bytes(c)
        if n is not None:
            out.append('#define %s_BYTES %d /* s_%s, fixed */' % (name.upper(), n, name))
    out.append('')
    out.append('/* [api][version][0 request, 1 response]. */')
    out.append('static const struct msg msgs[PROTO_API_COUNT][PROTO_VERSIONS][2] = {')
    for a in sorted(apis, key=lambda x: x.key):
        out.append('    [%s] = {' % a.enum)
        for v in range(a.vmax + 1):
            pair = []
            for m in (a.request, a.response):
                pc = part_content(S, m, v)
                shape = m.shape(v)
                pair.append('{%s, %s, %s}' % (S.names[msg_content(S, m, v)],
                                              S.names[pc] if pc is not None else 'NULL',
                                              'SHAPE_' + shape.upper() if shape else 'SHAPE_NONE'))
            out.append('        [%d] = {%s},' % (v, ', '.join(pair)))
        out.append('    },')
    out.append('};')
    out.append('')
    out.append('static const uint16_t api_version_max[PROTO_API_COUNT] = {')
    for a in sorted(apis, key=lambda x: x.key):
        out.append('    [%s] = %d,' % (a.enum, a.vmax))
    out.append('};')
    out.append('')
    out.append('static const char *const api_names[PROTO_API_COUNT] = {')
    for a in sorted(apis, key=lambda x: x.key):
        out.append('    [%s] = "%s",' % (a.enum, a.name))
    out.append('};')
    out.append('')
    out.append('/* The request bodies that start with the name of what they act on: a')
    out.append(' * group id or a topic. Read by proto_req_names(). */')
    out.append('static const uint8_t req_first_name[PROTO_API_COUNT] = {')
    for a in sorted(apis, key=lambda x: x.key):
        if a.names:
            out.append('    [%s] = PROTO_NAME_%s,' % (a.enum, a.names.upper()))
    out.append('};')
    return '\n'.join(out) + '\n'


# ---- C of the "gen" messages ----
#
# A message is flat (no array: one-shot *_encode / *_decode) or streaming
# (its head fields, then one outer array walked by proto_enc_topic /
# proto_next_topic and the partition element's functions). Its head is
# passed as nothing (no fields), by value (one field) or as a struct named
# after the message (more). A partition element gets its own functions,
# <msg>_partition and <msg>_next_partition, unless it is one of the shared
# elements (elem part_index, part_result, part_offset: proto_enc_partition_*).

ENC = {'i8': 'wr_u8(%(w)s, (uint8_t)%(x)s);', 'i16': 'wr_be16(%(w)s, (uint16_t)%(x)s);',
       'i32': 'wr_be32(%(w)s, (uint32_t)%(x)s);', 'i64': 'wr_be64(%(w)s, (uint64_t)%(x)s);',
       'err': 'enc_err(%(e)s, %(x)s);', 'bool': 'wr_u8(%(w)s, %(x)s ? 1 : 0);',
       'str': 'enc_str(%(e)s, %(x)s, %(null)s);'}
DEC = {'i8': '(int8_t)rd_u8(%(r)s)', 'i16': '(int16_t)rd_be16(%(r)s)',
       'i32': '(int32_t)rd_be32(%(r)s)', 'i64': '(int64_t)rd_be64(%(r)s)',
       'err': 'rd_err_code(%(r)s)', 'str': 'rd_str(%(r)s, %(null)s)'}
C_TYPE = {'i8': 'int8_t', 'i16': 'int16_t', 'i32': 'int32_t', 'i64': 'int64_t', 'err': 'int',
          'bool': 'bool', 'str': 'struct proto_str'}


def split(m):
    head = [f for f in m.fields if f.type != '[]']
    outer = [f for f in m.fields if f.type == '[]']
    return head, (outer[0] if outer else None)


def part_of(m):
    for f in walk_fields(m.fields, 0):
        if f.part:
            return f
    return None


def own_part(m):
    """The partition array whose element gets this message's functions."""
    p = part_of(m)
    return p if p is not None and p.elem not in SHARED_PARTS else None


def vcond(f, ver):
    lo, hi = f.versions
    conds = []
    if lo > 0:
        conds.append('%s >= %d' % (ver, lo))
    if hi < 32767:
        conds.append('%s <= %d' % (ver, hi))
    return ' && '.join(conds)


def ids_count(f, x):
    """The count member beside the ids array x ("p->replicas")."""
    return x[:x.rindex(f.name)] + f.ids


def enc_field(f, x, e, w, ver, ind):
    if f.ids is not None:
        line = 'enc_broker_ids(%s, %s, %s);' % (e, x, ids_count(f, x))
    elif f.type == 'bytes':
        line = 'enc_bytes(%s, %s, %s_bytes);' % (e, x, x)
    else:
        line = ENC[f.type] % {'w': w, 'x': x, 'e': e, 'null': 'true' if f.null else 'false'}
    cond = vcond(f, ver)
    if cond:
        return [ind + 'if (%s) {' % cond, ind + '    ' + line, ind + '}']
    return [ind + line]


def dec_field(f, x, r, ver, ind):
    if f.ids is not None:
        line = '%s = dec_broker_ids(%s, %s);' % (ids_count(f, x), r, x)
    elif f.type == 'bytes':
        line = '%s = rd_bytes(%s, &%s_bytes);' % (x, r, x)
    elif f.type == 'bool':
        line = '%s = rd_u8(%s) != 0;' % (x, r)
    else:
        line = '%s = %s;' % (x, DEC[f.type] % {'r': r, 'null': 'true' if f.null else 'false'})
    cond = vcond(f, ver)
    if cond:
        absent = f.default if f.default is not None else '0'
        return [ind + 'if (%s) {' % cond, ind + '    ' + line, ind + '} else {',
                ind + '    %s = %s;' % (x, absent), ind + '}']
    return [ind + line]


def checks(head, x_of):
    """C conditions under which a decoded head is refused (-NG_EBADARG)."""
    conds = []
    for f in head:
        x = x_of(f)
        if f.check == 'nonneg':
            conds.append('%s < 0' % x)
        elif f.check == 'positive':
            conds.append('%s <= 0' % x)
        elif f.check == 'acks':
            conds.append('(%s != PROTO_ACKS_NONE && %s != PROTO_ACKS_LEADER && %s != PROTO_ACKS_ALL)'
                         % (x, x, x))
    return conds


def head_params(m, head):
    """(encoder parameter, decoder parameter, C of one field in the encoder,
    in the decoder) for the head."""
    if not head:
        return None, None, None, None
    if len(head) == 1:
        f = head[0]
        t = C_TYPE[f.type]
        return ('%s %s' % (t, f.name), '%s *%s_out' % (t, f.name),
                lambda g: g.name, lambda g: '*%s_out' % g.name)
    return ('const struct %s *in' % m.cname, 'struct %s *out' % m.cname,
            lambda g: 'in->%s' % g.name, lambda g: 'out->%s' % g.name)


def gen_flat(a, m, out):
    head, _ = split(m)
    api = a.enum
    enc_p, dec_p, ex, dx = head_params(m, head)
    args = ['struct wr *w', 'uint16_t version', 'uint32_t correlation_id']
    if not m.response:
        args.append('struct proto_str client_id')
    if enc_p:
        args.append(enc_p)
    out.append('int %s_encode(%s)' % (m.cname, ', '.join(args)))
    out.append('{')
    if len(head) > 1:
        out.append('    ASSERT(in != NULL);')
    out.append('    struct proto_enc e;')
    if m.response:
        out.append('    enc_resp_begin(&e, w, %s, version, correlation_id);' % api)
    else:
        out.append('    enc_req_begin(&e, w, %s, version, correlation_id, client_id);' % api)
    for f in head:
        out += enc_field(f, ex(f), '&e', 'w', 'version', '    ')
    out.append('    return proto_enc_end(&e);')
    out.append('}')
    out.append('')
    dargs = ['struct rd *body', 'uint16_t version'] + ([dec_p] if dec_p else [])
    out.append('int %s_decode(%s)' % (m.cname, ', '.join(dargs)))
    out.append('{')
    if len(head) == 1:
        out.append('    ASSERT(%s_out != NULL);' % head[0].name)
    elif head:
        out.append('    ASSERT(out != NULL);')
    out.append('    struct proto_dec d;')
    out.append('    int rc = dec_open(body, %s, version, %s, &d);' % (api, tf(m.response)))
    if not head:
        out.append('    return rc;')
        out.append('}')
        out.append('')
        return
    out.append('    if (rc != 0) {')
    out.append('        return rc;')
    out.append('    }')
    gen_head_dec(head, dx, '&d.rd', 'version', out)
    out.append('    ASSERT(d.rd.err == 0);')
    gen_checks(m, head, dx, out)
    out.append('}')
    out.append('')


def tf(b):
    return 'true' if b else 'false'


def gen_head_dec(head, dx, r, ver, out):
    for f in head:
        if f.type == 'bool':
            # Read as a byte: a value past 1 is refused after the head.
            out.append('    uint8_t %s = rd_u8(%s);' % (f.name, r))
            out.append('    %s = %s != 0;' % (dx(f), f.name))
        else:
            out += dec_field(f, dx(f), r, ver, '    ')


def gen_checks(m, head, dx, out):
    conds = checks(head, dx) + ['%s > 1' % f.name for f in head if f.type == 'bool']
    if m.check is not None:
        if len(head) < 2:
            raise DefError('%s: a message check takes a head of two fields or more' % m.where)
        conds.append('!%s(out)' % m.check)
    if conds:
        out.append('    return %s ? -NG_EBADARG : 0;' % ' || '.join(conds))
    else:
        out.append('    return 0;')


def gen_stream(a, m, out):
    head, outer = split(m)
    api = a.enum
    enc_p, dec_p, ex, dx = head_params(m, head)
    args = ['struct proto_enc *e', 'struct wr *w', 'uint16_t version', 'uint32_t correlation_id']
    if not m.response:
        args.append('struct proto_str client_id')
    if enc_p:
        args.append(enc_p)
    if outer.null:
        args.append('bool topics_all')
    out.append('void %s_begin(%s)' % (m.cname, ', '.join(args)))
    out.append('{')
    if len(head) > 1:
        out.append('    ASSERT(in != NULL);')
    if m.response:
        out.append('    enc_resp_begin(e, w, %s, version, correlation_id);' % api)
    else:
        out.append('    enc_req_begin(e, w, %s, version, correlation_id, client_id);' % api)
    for f in head:
        out += enc_field(f, ex(f), 'e', 'w', 'version', '    ')
    if outer.null:
        out.append('    if (topics_all) {')
        out.append('        wr_be32(w, UINT32_MAX); /* null array: all of them */')
        out.append('    } else {')
        out.append('        enc_topics_open(e);')
        out.append('    }')
    else:
        out.append('    enc_topics_open(e);')
    out.append('}')
    out.append('')
    dargs = ['struct rd *body', 'uint16_t version'] + ([dec_p] if dec_p else []) + \
        ['struct proto_dec *d']
    out.append('int %s_decode(%s)' % (m.cname, ', '.join(dargs)))
    out.append('{')
    if len(head) == 1:
        out.append('    ASSERT(%s_out != NULL);' % head[0].name)
    elif head:
        out.append('    ASSERT(out != NULL);')
    out.append('    int rc = dec_open(body, %s, version, %s, d);' % (api, tf(m.response)))
    out.append('    if (rc != 0) {')
    out.append('        return rc;')
    out.append('    }')
    gen_head_dec(head, dx, '&d->rd', 'version', out)
    out.append('    dec_topics_open(d);')
    gen_checks(m, head, dx, out)
    out.append('}')
    out.append('')
    if outer.fn is not None:
        gen_outer_elem(m, outer, out)
    p = own_part(m)
    if p is None:
        return
    el = '%s_partition' % m.cname
    st = p.struct or el
    out.append('void %s(struct proto_enc *e, const struct %s *p)' % (el, st))
    out.append('{')
    out.append('    enc_check(e, %s, %s);' % (api, tf(m.response)))
    out.append('    enc_part_add(e);')
    for f in p.fields:
        out += enc_field(f, 'p->' + f.name, 'e', 'e->w', 'e->api_version', '    ')
    out.append('}')
    out.append('')
    out.append('bool %s_next_partition(struct proto_dec *d, struct %s *p)' % (m.cname, st))
    out.append('{')
    out.append('    if (!dec_part_next(d, %s, %s)) {' % (api, tf(m.response)))
    out.append('        return false;')
    out.append('    }')
    for f in p.fields:
        out += dec_field(f, 'p->' + f.name, '&d->rd', 'd->api_version', '    ')
    out.append('    ASSERT(d->rd.err == 0);')
    out.append('    return true;')
    out.append('}')
    out.append('')


def gen_outer_elem(m, outer, out):
    """<msg>_<fn> and <msg>_next: an outer array whose elements are
    whole structs (not topics with partitions)."""
    api = m.api.enum
    out.append('void %s_%s(struct proto_enc *e, const struct %s *x)' % (m.cname, outer.fn,
                                                                     outer.struct))
    out.append('{')
    out.append('    enc_check(e, %s, %s);' % (api, tf(m.response)))
    out.append('    enc_outer_add(e, %s);' % LIMIT_MAX[outer.limit])
    for f in outer.fields:
        out += enc_field(f, 'x->' + f.name, 'e', 'e->w', 'e->api_version', '    ')
    out.append('}')
    out.append('')
    out.append('bool %s_next(struct proto_dec *d, struct %s *x)' % (m.cname, outer.struct))
    out.append('{')
    out.append('    dec_check(d, %s, %s);' % (api, tf(m.response)))
    out.append('    if (d->topics_left == 0) {')
    out.append('        return false;')
    out.append('    }')
    out.append('    d->topics_left--;')
    for f in outer.fields:
        out += dec_field(f, 'x->' + f.name, '&d->rd', 'd->api_version', '    ')
    out.append('    ASSERT(d->rd.err == 0);')
    out.append('    return true;')
    out.append('}')
    out.append('')


def check_gen_c(m):
    head, outer = split(m)
    p = own_part(m)
    if p is not None:
        for f in p.fields:
            if f.type == '[]' and (f.ids is None or [g.type for g in f.fields] != ['i32']):
                raise DefError('%s: gen: arrays in a partition element are written by hand, '
                               'but for broker ids (ids)' % f.where)
    if outer is not None:
        shape = m.shape(0)
        if any(m.shape(v) != shape for v in range(m.api.vmax + 1)):
            raise DefError('%s: gen: one shape at every version' % m.where)
        if outer.fn is not None:
            for f in outer.fields:
                if f.type == '[]':
                    raise DefError('%s: gen: arrays in an element are written by hand' % f.where)
        elif shape not in ('names', 'results', 'topic_parts', 'topic_parts_any'):
            raise DefError('%s: gen: shape %s is written by hand' % (m.where, shape))


def gen_msgs(apis):
    out = ['/* Generated by net/proto_gen.py from net/proto.def: do not edit.', ' *',
           ' * The encoders and decoders of the messages net/proto.def marks "gen";',
           ' * net/proto.h declares them and states their contracts. */', '']
    for a in apis:
        for m in (a.request, a.response):
            if not m.gen:
                continue
            check_gen_c(m)
            out.append('/* ---- %s %s ---- */' % (a.name, 'response' if m.response else 'request'))
            out.append('')
            if split(m)[1] is None:
                gen_flat(a, m, out)
            else:
                gen_stream(a, m, out)
    return '\n'.join(out)


# ---- recoders ----

PART_LOOPS = {
    'part_index': ['int32_t p;', 'while (proto_next_partition_index(&d, &p)) {',
                   '    proto_enc_partition_index(&e, p);', '}'],
    'part_result': ['struct proto_partition_result p;',
                    'while (proto_next_partition_result(&d, &p)) {',
                    '    proto_enc_partition_result(&e, &p);', '}'],
    'part_offset': ['struct proto_partition_offset p;',
                    'while (proto_next_partition_offset(&d, &p)) {',
                    '    proto_enc_partition_offset(&e, &p);', '}'],
}


def recode_name(m):
    return 'recode_%s_%s' % (m.api.cname, m.dir)


def gen_recoder(m, out):
    head, outer = split(m)
    out.append('static int %s(uint16_t v, uint32_t c, struct proto_str client_id, struct rd *r,'
               % recode_name(m))
    out.append('                  struct wr *w, int *enc_rc)')
    out.append('{')
    if m.response:
        out.append('    (void)client_id;')
    cid = [] if m.response else ['client_id']
    if len(head) == 1:
        out.append('    %s x;' % C_TYPE[head[0].type])
        darg, earg = ['&x'], ['x']
    elif head:
        out.append('    struct %s x;' % m.cname)
        darg, earg = ['&x'], ['&x']
    else:
        darg, earg = [], []
    if outer is None:
        out.append('    int rc = %s_decode(%s);' % (m.cname, ', '.join(['r', 'v'] + darg)))
        out.append('    if (rc == 0) {')
        out.append('        *enc_rc = %s_encode(%s);' % (m.cname, ', '.join(['w', 'v', 'c'] + cid + earg)))
        out.append('    }')
        out.append('    return rc;')
        out.append('}')
        out.append('')
        return
    out.append('    struct proto_dec d;')
    out.append('    struct proto_enc e;')
    out.append('    int rc = %s_decode(%s);' % (m.cname, ', '.join(['r', 'v'] + darg + ['&d'])))
    out.append('    if (rc != 0) {')
    out.append('        return rc;')
    out.append('    }')
    all_arg = ['d.topic_count < 0'] if outer.null else []
    out.append('    %s_begin(%s);' % (m.cname, ', '.join(['&e', 'w', 'v', 'c'] + cid + earg + all_arg)))
    shape = m.shape(0)
    if outer.fn is not None:
        out.append('    struct %s t;' % outer.struct)
        out.append('    while (%s_next(&d, &t)) {' % m.cname)
        out.append('        %s_%s(&e, &t);' % (m.cname, outer.fn))
        out.append('    }')
    elif shape == 'results':
        out.append('    struct proto_topic_result t;')
        out.append('    while (proto_next_topic_result(&d, &t)) {')
        out.append('        proto_enc_topic_result(&e, &t);')
        out.append('    }')
    else:
        out.append('    struct proto_topic t;')
        out.append('    while (proto_next_topic(&d, &t)) {')
        out.append('        proto_enc_topic(&e, t.name);')
        p = part_of(m)
        if shape != 'names':
            if p.elem in SHARED_PARTS:
                lines = PART_LOOPS[p.elem]
            else:
                el = '%s_partition' % m.cname
                lines = ['struct %s p;' % (p.struct or el), 'while (%s_next_partition(&d, &p)) {' % m.cname,
                         '    %s(&e, &p);' % el, '}']
            out += ['        ' + x for x in lines]
        out.append('    }')
    out.append('    *enc_rc = proto_enc_end(&e);')
    out.append('    return 0;')
    out.append('}')
    out.append('')


def gen_recode(apis):
    out = ['/* Generated by net/proto_gen.py from net/proto.def: do not edit. */',
           '#include "net/proto_recode.h"', '']
    for a in apis:
        for m in (a.request, a.response):
            if m.gen:
                gen_recoder(m, out)
    out.append('int proto_recode(uint16_t api_key, uint16_t version, bool response,')
    out.append('                 uint32_t correlation_id, struct proto_str client_id, struct rd *body,')
    out.append('                 struct wr *w, int *enc_rc)')
    out.append('{')
    out.append('    ASSERT(proto_api_check(api_key, version) == 0);')
    out.append('    *enc_rc = 0;')
    out.append('    switch (api_key * 2 + (response ? 1 : 0)) {')
    for a in sorted(apis, key=lambda x: x.key):
        for m in (a.request, a.response):
            out.append('    case %s * 2 + %d:' % (a.enum, 1 if m.response else 0))
            fn = recode_name(m) if m.gen else 'proto_recode_hand'
            if m.gen:
                out.append('        return %s(version, correlation_id, client_id, body, w, enc_rc);'
                           % fn)
            else:
                out.append('        return proto_recode_hand(api_key, version, response, '
                           'correlation_id, client_id,')
                out.append('                                 body, w, enc_rc);')
    out.append('    default:')
    out.append('        UNREACHABLE();')
    out.append('    }')
    out.append('}')
    out.append('')
    out.append('/* What net/proto.def says of each message, for the tests it drives. */')
    out.append('const struct proto_def_api proto_def_apis[] = {')
    for a in sorted(apis, key=lambda x: x.key):
        names = 'PROTO_NAME_%s' % a.names.upper() if a.names else '0'
        out.append('    {.key = %s, .name = "%s", .version_max = %d, .names = %s, '
                   '.request_gen = %s, .response_gen = %s},'
                   % (a.enum, a.name, a.vmax, names, tf(a.request.gen), tf(a.response.gen)))
    out.append('};')
    out.append('const size_t proto_def_api_count = %d;' % len(apis))
    out.append('')
    gen_samples(apis, out)
    return '\n'.join(out) + '\n'


# ---- sample bodies ----
#
# For every message and version, bodies built here from the def alone (not
# from the C it generates): "full" has two elements in every array and every
# nullable string set; "empty" has no element in any array and every
# nullable string and array null. Integers are distinct small values, and
# 1 for an i8 and a bool, which every hand-written value check accepts;
# error codes are past NG_ERR_FIRST (4096).

NG_ERR_FIRST = 4096


class Sampler:
    def __init__(self, full):
        self.full = full
        self.n = 0

    def next(self):
        self.n += 1
        return self.n

    def field(self, f, v):
        t = f.type
        if t in ('i8', 'bool'):
            return bytes([1])
        if t == 'i16':
            return self.next().to_bytes(2, 'big')
        if t == 'i32':
            return self.next().to_bytes(4, 'big')
        if t == 'i64':
            return self.next().to_bytes(8, 'big')
        if t == 'err':
            return (NG_ERR_FIRST + self.next()).to_bytes(2, 'big')
        if t == 'str':
            if f.null and not self.full:
                return (0xffff).to_bytes(2, 'big')
            text = ('s%d' % self.next()).encode()
            return len(text).to_bytes(2, 'big') + text
        if t == 'bytes':
            data = bytes([self.next() & 0xff] * 3)
            return len(data).to_bytes(4, 'big') + data
        assert t == '[]'
        if not self.full:
            return (0xffffffff if f.null else 0).to_bytes(4, 'big')
        body = b''.join(self.fields(f.fields, v) for _ in range(2))
        return (2).to_bytes(4, 'big') + body

    def fields(self, fields, v):
        return b''.join(self.field(f, v) for f in at_version(fields, v))


def gen_samples(apis, out):
    rows = []
    n = 0
    for a in sorted(apis, key=lambda x: x.key):
        for m in (a.request, a.response):
            for v in range(a.vmax + 1):
                for full in (True, False):
                    body = Sampler(full).fields(m.fields, v)
                    n += 1
                    name = 'sample_%d' % n
                    data = ', '.join('0x%02x' % b for b in body) or '0'
                    out.append('static const uint8_t %s[] = {%s};' % (name, data))
                    rows.append('    {%s, %d, %s, %s, %s, %d},' % (a.enum, v, tf(m.response),
                                                              tf(full), name, len(body)))
    out.append('')
    out.append('const struct proto_def_sample proto_def_samples[] = {')
    out += rows
    out.append('};')
    out.append('const size_t proto_def_sample_count = %d;' % len(rows))


def main(argv):
    if len(argv) != 5:
        sys.stderr.write('usage: proto_gen.py proto.def proto_def.inc proto_msgs.inc '
                         'proto_recode.c\n')
        return 2
    try:
        apis = parse(argv[1])
        S, explicit = collect(apis)
        outputs = [gen_def(apis, S, explicit)]
        outputs += [gen_msgs(apis), gen_recode(apis)]
    except DefError as e:
        sys.stderr.write('proto_gen.py: %s\n' % e)
        return 1
    for path, text in zip(argv[2:], outputs):
        with open(path, 'w') as fh:
            fh.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
