/*
 * client/cli/acl.c — `nagare acl add|list|delete`: the broker's ACLs
 * (nagare_acls_create, nagare_acls_describe, nagare_acls_delete), one
 * request each (docs/security.md, "Authorization").
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "client/cli/cli.h"

static const char acl_usage_text[] =
    "usage: nagare acl add (--allow | --deny) --principal User:NAME RESOURCE\n"
    "                      --operation OP[,OP...] [--host HOST]\n"
    "       nagare acl list [FILTER...]\n"
    "       nagare acl delete (FILTER... | --all)\n"
    "\n"
    "  add     add an ACL per operation: the principal (User:* for any) from the\n"
    "          host (default *, any) may (--allow) or may not (--deny) do it on the\n"
    "          resource. A deny wins over any allow; with the broker's authorizer\n"
    "          on, what no ACL allows is refused.\n"
    "  list    print the ACLs the filters select (all without one)\n"
    "  delete  delete the ACLs the filters select, and print them\n"
    "\n"
    "RESOURCE, one of:\n"
    "  --topic NAME          a topic (* for every topic)\n"
    "  --topic-prefix P      every topic whose name starts with P\n"
    "  --group NAME          a consumer or share group (* for every group)\n"
    "  --group-prefix P      every group whose id starts with P\n"
    "  --cluster             the cluster (creating topics, ACLs, replication)\n"
    "\n"
    "FILTER: --principal, --host, a RESOURCE (list and delete: that exact ACL\n"
    "resource), --operation OP (one), --allow or --deny.\n"
    "\n"
    "OP: read, write, create, delete, alter, describe, describe_configs,\n"
    "alter_configs, cluster_action, idempotent_write, all. read, write, delete\n"
    "and alter imply describe.\n"
    "\n"
    "options:\n" CLI_BROKER_HELP "  --help               print this help\n";

enum {
    OPT_ALLOW = 256,
    OPT_DENY,
    OPT_PRINCIPAL,
    OPT_HOST,
    OPT_TOPIC,
    OPT_TOPIC_PREFIX,
    OPT_GROUP,
    OPT_GROUP_PREFIX,
    OPT_CLUSTER,
    OPT_OPERATION,
    OPT_ALL,
};

static const struct option acl_longopts[] = {
    {"broker", required_argument, NULL, 'b'},
    {"help", no_argument, NULL, 'h'},
    {"allow", no_argument, NULL, OPT_ALLOW},
    {"deny", no_argument, NULL, OPT_DENY},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"host", required_argument, NULL, OPT_HOST},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"topic-prefix", required_argument, NULL, OPT_TOPIC_PREFIX},
    {"group", required_argument, NULL, OPT_GROUP},
    {"group-prefix", required_argument, NULL, OPT_GROUP_PREFIX},
    {"cluster", no_argument, NULL, OPT_CLUSTER},
    {"operation", required_argument, NULL, OPT_OPERATION},
    {"all", no_argument, NULL, OPT_ALL},
    {NULL, 0, NULL, 0},
};

/* Operations one `add` may name. */
#define ACL_OPS_MAX 16

struct acl_opts {
    const char *cmd; /* "acl add"... */
    const char *broker;
    bool help;
    bool all;
    struct nagare_acl f; /* the ACL (add) or the filter */
    int ops[ACL_OPS_MAX];
    size_t op_count;
    int resources; /* RESOURCE options given */
};

/* "read,write" into o->ops. */
static int parse_ops(struct acl_opts *o, const char *arg)
{
    const char *p = arg;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        char word[32];
        int code = 0;
        if (n > 0 && n < sizeof(word)) {
            memcpy(word, p, n);
            word[n] = '\0';
            code = nagare_acl_code(NAGARE_ACL_VOCAB_OP, word);
        }
        if (code == 0 || code == NAGARE_ACL_OP_ANY || o->op_count == ACL_OPS_MAX) {
            return cli_usage_error(o->cmd, "--operation: '%.*s' is not an operation", (int)n, p);
        }
        o->ops[o->op_count++] = code;
        p += n + (end != NULL ? 1 : 0);
    }
    return o->op_count > 0 ? 0 : cli_usage_error(o->cmd, "--operation: none given");
}

static void set_resource(struct acl_opts *o, int type, int pattern, const char *name)
{
    o->f.resource_type = type;
    o->f.pattern_type = pattern;
    o->f.name = name;
    o->resources++;
}

static int acl_option(void *opts, int ch, char **argv)
{
    struct acl_opts *o = opts;
    switch (ch) {
    case 'h':
        o->help = true;
        return 0;
    case 'b':
        return cli_broker_option(o->cmd, optarg, &o->broker);
    case OPT_ALLOW:
    case OPT_DENY: {
        int perm = ch == OPT_ALLOW ? NAGARE_ACL_PERMISSION_ALLOW : NAGARE_ACL_PERMISSION_DENY;
        if (o->f.permission != NAGARE_ACL_PERMISSION_ANY && o->f.permission != perm) {
            return cli_usage_error(o->cmd, "--allow and --deny together");
        }
        o->f.permission = perm;
        return 0;
    }
    case OPT_PRINCIPAL:
        o->f.principal = optarg;
        return 0;
    case OPT_HOST:
        o->f.host = optarg;
        return 0;
    case OPT_TOPIC:
        set_resource(o, NAGARE_ACL_RESOURCE_TOPIC, NAGARE_ACL_PATTERN_LITERAL, optarg);
        return 0;
    case OPT_TOPIC_PREFIX:
        set_resource(o, NAGARE_ACL_RESOURCE_TOPIC, NAGARE_ACL_PATTERN_PREFIXED, optarg);
        return 0;
    case OPT_GROUP:
        set_resource(o, NAGARE_ACL_RESOURCE_GROUP, NAGARE_ACL_PATTERN_LITERAL, optarg);
        return 0;
    case OPT_GROUP_PREFIX:
        set_resource(o, NAGARE_ACL_RESOURCE_GROUP, NAGARE_ACL_PATTERN_PREFIXED, optarg);
        return 0;
    case OPT_CLUSTER:
        set_resource(o, NAGARE_ACL_RESOURCE_CLUSTER, NAGARE_ACL_PATTERN_LITERAL,
                     NAGARE_ACL_CLUSTER_NAME);
        return 0;
    case OPT_OPERATION:
        return parse_ops(o, optarg);
    case OPT_ALL:
        o->all = true;
        return 0;
    default:
        return cli_bad_option(o->cmd, ch, argv);
    }
}

static const char *word(enum nagare_acl_vocab v, int code)
{
    const char *w = nagare_acl_name(v, code);
    return w != NULL ? w : "?";
}

static void acl_print(const struct nagare_acl *a)
{
    printf("%-5s %-24s %-15s %-16s %-7s %-8s %s\n",
           word(NAGARE_ACL_VOCAB_PERMISSION, a->permission), a->principal, a->host,
           word(NAGARE_ACL_VOCAB_OP, a->operation),
           word(NAGARE_ACL_VOCAB_RESOURCE, a->resource_type),
           word(NAGARE_ACL_VOCAB_PATTERN, a->pattern_type), a->name);
}

static void acl_print_all(const struct nagare_acl *v, size_t n)
{
    if (n > 0) {
        printf("%-5s %-24s %-15s %-16s %-7s %-8s %s\n", "perm", "principal", "host", "operation",
               "type", "pattern", "resource");
    }
    for (size_t i = 0; i < n; i++) {
        acl_print(&v[i]);
    }
}

/* The usage errors of each subcommand, before connecting. */
static int acl_check(struct acl_opts *o)
{
    if (strcmp(o->cmd, "acl add") == 0) {
        if (o->f.permission == NAGARE_ACL_PERMISSION_ANY) {
            return cli_usage_error(o->cmd, "--allow or --deny is needed");
        }
        if (o->f.principal == NULL || o->resources != 1 || o->op_count == 0) {
            return cli_usage_error(o->cmd, "--principal, one RESOURCE and --operation are needed");
        }
        return o->all ? cli_usage_error(o->cmd, "--all is for delete") : 0;
    }
    if (o->op_count > 1 || o->resources > 1) {
        return cli_usage_error(o->cmd, "a filter names one operation and one resource");
    }
    bool filtered = o->f.principal != NULL || o->f.host != NULL || o->resources > 0 ||
                    o->op_count > 0 || o->f.permission != NAGARE_ACL_PERMISSION_ANY;
    if (strcmp(o->cmd, "acl delete") == 0 && !filtered && !o->all) {
        return cli_usage_error(o->cmd, "give a filter, or --all to delete every ACL");
    }
    return 0;
}

static int acl_add(nagare_admin *a, struct acl_opts *o)
{
    struct nagare_acl acls[ACL_OPS_MAX];
    for (size_t i = 0; i < o->op_count; i++) {
        acls[i] = o->f;
        acls[i].host = o->f.host != NULL ? o->f.host : "*";
        acls[i].operation = o->ops[i];
    }
    int rc = nagare_acls_create(a, acls, o->op_count);
    if (rc < 0) {
        return cli_fail(rc, "adding ACLs");
    }
    for (size_t i = 0; i < o->op_count; i++) {
        printf("added: ");
        acl_print(&acls[i]);
    }
    return 0;
}

static int acl_list_or_delete(nagare_admin *a, struct acl_opts *o, bool delete)
{
    o->f.operation = o->op_count > 0 ? o->ops[0] : NAGARE_ACL_OP_ANY;
    const struct nagare_acl *v = NULL;
    size_t n = 0;
    int rc = delete ? nagare_acls_delete(a, &o->f, &v, &n) : nagare_acls_describe(a, &o->f, &v, &n);
    if (rc < 0) {
        return cli_fail(rc, delete ? "deleting ACLs" : "listing ACLs");
    }
    acl_print_all(v, n);
    if (delete) {
        printf("deleted %zu ACL%s\n", n, n == 1 ? "" : "s");
    }
    nagare_acls_free(a, v);
    return 0;
}

int cli_acl_main(int argc, char **argv)
{
    if (argc < 2) {
        return cli_usage_error("acl", "missing subcommand: add, list or delete");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(acl_usage_text, stdout);
        return 0;
    }
    const char *cmd = strcmp(argv[1], "add") == 0      ? "acl add"
                      : strcmp(argv[1], "list") == 0   ? "acl list"
                      : strcmp(argv[1], "delete") == 0 ? "acl delete"
                                                       : NULL;
    if (cmd == NULL) {
        return cli_usage_error("acl", "unknown subcommand '%s': add, list or delete", argv[1]);
    }
    struct acl_opts o = {.cmd = cmd,
                         .broker = cli_broker_default(),
                         .f = {.resource_type = NAGARE_ACL_RESOURCE_ANY,
                               .pattern_type = NAGARE_ACL_PATTERN_ANY,
                               .operation = NAGARE_ACL_OP_ANY,
                               .permission = NAGARE_ACL_PERMISSION_ANY}};
    const char *none;
    int st = cli_options(argc - 1, argv + 1, acl_longopts, acl_option, &o);
    st = st == 0 && !o.help ? cli_operand(cmd, argc - 1, argv + 1, false, NULL, &none) : st;
    st = st == 0 && !o.help ? acl_check(&o) : st;
    if (st != 0 || o.help) {
        if (o.help) {
            fputs(acl_usage_text, stdout);
        }
        return st;
    }
    nagare_admin *a = NULL;
    st = cli_admin_connect(o.broker, &a);
    if (st != 0) {
        return st;
    }
    st = cmd[4] == 'a' ? acl_add(a, &o) : acl_list_or_delete(a, &o, cmd[4] == 'd');
    nagare_admin_destroy(a);
    int rc = cli_flush_stdout();
    return st == 0 && rc < 0 && rc != -EPIPE ? cli_fail(rc, "writing to stdout") : st;
}
