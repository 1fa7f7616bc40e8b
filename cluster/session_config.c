/* cluster/session_config.c — the session's configuration: defaults and
 * the parsing the broker's config shares (cluster/session.h). Pure: no
 * etcd, so broker/config.c links it without the session. */
#include <string.h>

#include "base/err.h"
#include "cluster/session.h"

void cluster_session_config_default(struct cluster_session_config *c)
{
    *c = (struct cluster_session_config){
        .broker_id = -1,
        .lease_ttl_s = CLUSTER_LEASE_TTL_S_DEFAULT,
        .preferred_leader_check_ms = CLUSTER_PREFERRED_LEADER_CHECK_MS_DEFAULT,
    };
    static_assert(sizeof(CLUSTER_NAME_DEFAULT) <= CLUSTER_NAME_BYTES, "the default name fits");
    memcpy(c->cluster_name, CLUSTER_NAME_DEFAULT, sizeof(CLUSTER_NAME_DEFAULT));
}

bool cluster_name_ok(const char *name)
{
    size_t n = strnlen(name, CLUSTER_NAME_BYTES);
    return n < CLUSTER_NAME_BYTES && proto_topic_name_valid(name, n);
}

int cluster_endpoints_parse(struct cluster_session_config *c, const char *list)
{
    char eps[ETCD_ENDPOINTS_MAX][CLUSTER_ENDPOINT_BYTES];
    uint32_t count = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++, len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        bool http = len > strlen("http://") && strncmp(p, "http://", strlen("http://")) == 0;
        if (!http || len >= CLUSTER_ENDPOINT_BYTES || count == ETCD_ENDPOINTS_MAX ||
            memchr(p, ' ', len) != NULL) {
            return -NG_EBADARG;
        }
        memcpy(eps[count], p, len);
        eps[count++][len] = '\0';
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    memcpy(c->endpoints, eps, sizeof(eps));
    c->endpoint_count = count;
    return 0;
}

