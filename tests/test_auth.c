/*
 * Integration tests for broker/sasl_serve.h and broker/users.h: the real
 * nagared with `authentication = required`, spoken to in raw frames
 * (tests/broker_support.h) and through libnagare. No test depends on
 * timing: the failed-login block is an hour long, and only its refusal is
 * checked, never its end.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/nagare.h"
#include "tests/auth_support.h"
#include "tests/broker_support.h"

#define USER "alice"
#define PASSWORD "correct horse"
#define FAILURES_MAX 3

static struct bk B;
static uint8_t batch[BT_BYTES_MAX];

static void setup(void)
{
    bk_init(&B);
    bk_set(&B, "authentication=required");
    bk_set(&B, "login_failures_max=3");
    bk_set(&B, "login_block_ms=1h");
    au_add_user_offline(B.data_dir, USER, PASSWORD);
    bk_start(&B);
}

static void teardown(void) { bk_fini(&B); }

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 120);

static struct cl connect_broker(void)
{
    struct cl c;
    cl_connect(&c, B.port, CL_TIMEOUT_MS_DEFAULT);
    return c;
}

static int produce_one(struct cl *c, const char *topic)
{
    size_t len = bt_make(batch, sizeof(batch), 2, 1, 1700000000000, -1, 0, -1);
    int64_t offset = -1;
    return rq_produce(c, topic, 0, batch, len, PROTO_ACKS_ALL, &offset);
}

Test(auth, a_request_before_logging_in_is_refused_and_the_connection_closed)
{
    struct cl c = connect_broker();
    rq_ping(&c); /* ApiVersions is allowed before a login */
    size_t len = bt_make(batch, sizeof(batch), 2, 1, 1700000000000, -1, 0, -1);
    uint32_t corr = rq_produce_send(&c, "orders", 0, batch, len, PROTO_ACKS_ALL);
    struct proto_resp_header h;
    struct rd body;
    cr_assert_eq(cl_recv(&c, &h, &body), 0);
    cr_assert_eq(h.correlation_id, corr);
    cr_assert_eq(h.err, -NG_EAUTH_REQUIRED, "%s", err_str(h.err));
    cr_assert(cl_wait_closed(&c), "the connection closes after the refusal");
    cl_close(&c);
    /* Nothing was written: a logged-in client finds no such topic. */
    c = connect_broker();
    cr_assert_eq(au_login(&c, USER, PASSWORD, SCRAM_SHA_256, NULL), 0);
    cr_assert_eq(
        rq_list_offset(&c, "orders", 0, PROTO_TIMESTAMP_LATEST, &(int64_t){0}, &(int64_t){0}),
        -NG_EUNKNOWN_TOPIC);
    cl_close(&c);
}

Test(auth, the_right_password_logs_in_with_either_mechanism_and_then_produce_works)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        struct cl c = connect_broker();
        cr_assert_eq(au_login(&c, USER, PASSWORD, (enum scram_mech)m, NULL), 0);
        cr_assert_eq(produce_one(&c, "orders"), 0);
        cr_assert_eq(rq_latest(&c, "orders", 0), 2 * (m + 1));
        cl_close(&c);
    }
}

/* The server-first message less its nonce: "s=<salt>,i=<iterations>". */
static const char *salt_and_iterations(const struct au_answer *a)
{
    const char *s = strstr(a->bytes, ",s=");
    cr_assert_not_null(s, "%s", a->bytes);
    return s + 1;
}

Test(auth, a_wrong_password_and_an_unknown_user_get_the_same_answers)
{
    struct au_answer first_wrong, first_unknown, again;
    struct cl c = connect_broker();
    int wrong = au_login(&c, USER, "not it", SCRAM_SHA_256, &first_wrong);
    cr_assert(cl_wait_closed(&c), "a failed login closes the connection");
    cl_close(&c);
    c = connect_broker();
    int unknown = au_login(&c, "mallory", "not it", SCRAM_SHA_256, &first_unknown);
    cr_assert(cl_wait_closed(&c));
    cl_close(&c);
    cr_assert_eq(wrong, -NG_EAUTH, "%s", err_str(wrong));
    cr_assert_eq(unknown, -NG_EAUTH, "%s", err_str(unknown));
    /* The same shape: a salt of the same size, the same iteration count. */
    cr_assert_eq(strlen(salt_and_iterations(&first_wrong)),
                 strlen(salt_and_iterations(&first_unknown)));
    cr_assert_str_eq(strstr(first_wrong.bytes, ",i="), strstr(first_unknown.bytes, ",i="));
    /* An unknown user's salt is the same on every attempt, as a real one's. */
    c = connect_broker();
    cr_assert_eq(au_login(&c, "mallory", "still not", SCRAM_SHA_256, &again), -NG_EAUTH);
    cl_close(&c);
    cr_assert_str_eq(salt_and_iterations(&again), salt_and_iterations(&first_unknown));
}

Test(auth, past_the_failure_limit_even_the_right_password_is_refused)
{
    for (int i = 0; i < FAILURES_MAX; i++) {
        struct cl c = connect_broker();
        cr_assert_eq(au_login(&c, USER, "guess", SCRAM_SHA_512, NULL), -NG_EAUTH);
        cl_close(&c);
    }
    struct cl c = connect_broker();
    cr_assert_eq(au_login(&c, USER, PASSWORD, SCRAM_SHA_512, NULL), -NG_EAUTH_THROTTLED);
    cr_assert(cl_wait_closed(&c));
    cl_close(&c);
}

Test(auth, a_handshake_for_a_mechanism_not_offered_names_those_offered)
{
    struct cl c = connect_broker();
    struct au_answer a;
    cr_assert_eq(au_handshake(&c, "PLAIN", &a), 0);
    cr_assert_eq(a.err, -NG_EMECHANISM);
    cr_assert_str_eq(a.bytes, "SCRAM-SHA-256,SCRAM-SHA-512");
    /* The connection may try again with one of them. */
    cr_assert_eq(au_login(&c, USER, PASSWORD, SCRAM_SHA_256, NULL), 0);
    /* A second login on a logged-in connection is out of order. */
    cr_assert_eq(au_handshake(&c, "SCRAM-SHA-256", &a), 0);
    cr_assert_eq(a.err, -NG_EBADARG);
    cl_close(&c);
}

Test(auth, a_malformed_first_message_fails_like_a_wrong_password)
{
    struct cl c = connect_broker();
    struct au_answer a;
    cr_assert_eq(au_handshake(&c, "SCRAM-SHA-256", &a), 0);
    cr_assert_eq(a.err, 0);
    const char *bad = "p=tls-unique,,n=alice,r=abc";
    cr_assert_eq(au_authenticate(&c, bad, strlen(bad), &a), 0);
    cr_assert_eq(a.err, -NG_EAUTH);
    cr_assert_eq(a.len, 0);
    cr_assert(cl_wait_closed(&c));
    cl_close(&c);
}

Test(auth, users_are_managed_by_a_logged_in_client_and_survive_a_restart)
{
    struct nagare_login login = {.user = USER, .password = PASSWORD};
    nagare_admin *a = NULL;
    const struct nagare_user_info *u = NULL;
    size_t n = 0;
    cr_assert_eq(nagare_admin_new(B.bootstrap, 10000, &a), 0); /* ApiVersions only */
    cr_assert_eq(nagare_users_list(a, &u, &n), -NAGARE_EAUTH_REQUIRED,
                 "without a login the first request is refused");
    nagare_admin_destroy(a);
    int rc = nagare_admin_new_login(B.bootstrap, 10000, &login, &a);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    cr_assert_eq(nagare_user_set(a, "bob", "b0b", "SCRAM-SHA-512", 8192), 0);
    cr_assert_eq(nagare_user_set(a, "carol", "c4rol", NULL, 0), 0);
    cr_assert_eq(nagare_user_set(a, "bad name", "x", NULL, 0), -NAGARE_EBADNAME);
    cr_assert_eq(nagare_user_delete(a, "carol", NULL), 0);
    cr_assert_eq(nagare_user_delete(a, "carol", NULL), -NAGARE_ENOTFOUND);
    cr_assert_eq(nagare_users_list(a, &u, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(u[0].user, USER);
    cr_assert(u[0].scram_sha_256 && u[0].scram_sha_512);
    cr_assert_str_eq(u[1].user, "bob");
    cr_assert(!u[1].scram_sha_256 && u[1].scram_sha_512);
    nagare_users_free(u);
    nagare_admin_destroy(a);

    bk_stop(&B);
    bk_start(&B);
    struct cl c = connect_broker();
    cr_assert_eq(au_login(&c, "bob", "b0b", SCRAM_SHA_512, NULL), 0);
    cl_close(&c);
    c = connect_broker();
    cr_assert_eq(au_login(&c, "carol", "c4rol", SCRAM_SHA_256, NULL), -NG_EAUTH);
    cl_close(&c);
    /* No password is kept: the file holds salts and keys only. */
    char path[BK_PATH_BYTES + 16];
    snprintf(path, sizeof(path), "%s/users", B.data_dir);
    char *text = bk_read_file(path, NULL);
    cr_assert_null(strstr(text, "b0b"));
    cr_assert_null(strstr(text, PASSWORD));
    free(text);
}

Test(auth, a_producer_and_a_consumer_log_in_and_a_wrong_password_is_a_clear_error)
{
    struct nagare_producer_config pc;
    nagare_producer_config_default(&pc);
    pc.bootstrap = B.bootstrap;
    pc.login = (struct nagare_login){.user = USER, .password = "wrong"};
    nagare_producer *p = NULL;
    int rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, -NAGARE_EAUTH, "%s", nagare_strerror(rc));
    cr_assert_str_eq(nagare_strerror(rc), "authentication failed: unknown user or wrong password");

    pc.login =
        (struct nagare_login){.user = USER, .password = PASSWORD, .mechanism = "SCRAM-SHA-512"};
    rc = nagare_producer_new(&pc, &p);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    struct nagare_record r = {.topic = "logged",
                              .partition = NAGARE_PARTITION_ANY,
                              .key_len = -1,
                              .value = "v",
                              .value_len = 1};
    cr_assert_eq(nagare_send(p, &r), 0);
    cr_assert_eq(nagare_producer_flush(p, 30000), 0);
    nagare_producer_destroy(p);

    struct nagare_consumer_config cc;
    nagare_consumer_config_default(&cc);
    cc.bootstrap = B.bootstrap;
    cc.login = (struct nagare_login){.user = USER, .password = PASSWORD};
    nagare_consumer *c = NULL;
    rc = nagare_consumer_new(&cc, &c);
    cr_assert_eq(rc, 0, "%s", nagare_strerror(rc));
    nagare_consumer_destroy(c);
}
