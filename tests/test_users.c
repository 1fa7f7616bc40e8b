/* Contract tests for broker/users.h: the table, its file (kept across an
 * open, damage found), and a credential's text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/err.h"
#include "broker/users.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ng-users-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(users, .init = setup, .fini = teardown);

static struct scram_cred cred_of(enum scram_mech m, const char *password)
{
    struct scram_cred c;
    cr_assert_eq(scram_cred_make(m, password, strlen(password), NULL, 0, 4096, &c), 0);
    return c;
}

Test(users, changes_are_kept_in_the_file_and_read_back_sorted)
{
    struct users u;
    cr_assert_eq(users_open(&u, dir), 0);
    cr_assert_eq(u.count, 0);
    struct scram_cred b256 = cred_of(SCRAM_SHA_256, "b"), b512 = cred_of(SCRAM_SHA_512, "b");
    struct scram_cred a256 = cred_of(SCRAM_SHA_256, "a");
    cr_assert_eq(users_upsert(&u, "bob", &b256), 0);
    cr_assert_eq(users_upsert(&u, "bob", &b512), 0);
    cr_assert_eq(users_upsert(&u, "al.ice@x", &a256), 0);
    cr_assert_eq(users_upsert(&u, "not valid", &a256), -NG_EBADNAME);
    cr_assert_eq(users_delete(&u, "carol", -1), -NG_ENOTFOUND);
    cr_assert_eq(users_delete(&u, "al.ice@x", SCRAM_SHA_512), -NG_ENOTFOUND);
    users_close(&u);

    cr_assert_eq(users_open(&u, dir), 0);
    cr_assert_eq(u.count, 2);
    cr_assert_str_eq(u.v[0].name, "al.ice@x");
    cr_assert_str_eq(u.v[1].name, "bob");
    const struct scram_cred *got = users_find(&u, "bob", SCRAM_SHA_512);
    cr_assert_not_null(got);
    cr_assert(memcmp(got, &b512, sizeof(b512)) == 0);
    cr_assert_null(users_find(&u, "al.ice@x", SCRAM_SHA_512));
    cr_assert_eq(users_delete(&u, "bob", SCRAM_SHA_256), 0);
    cr_assert_eq(users_delete(&u, "al.ice@x", -1), 0);
    users_close(&u);

    cr_assert_eq(users_open(&u, dir), 0);
    cr_assert_eq(u.count, 1);
    cr_assert_null(users_find(&u, "bob", SCRAM_SHA_256));
    cr_assert_not_null(users_find(&u, "bob", SCRAM_SHA_512));
    users_close(&u);
}

/* The file as the table writes it, for the damage tests. */
static char *file_of(struct users *u, size_t *len)
{
    static char buf[4096];
    int64_t n = users_encode(u, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    *len = (size_t)n;
    return buf;
}

Test(users, damage_anywhere_in_the_file_is_found)
{
    struct users u, t;
    users_init(&u);
    users_init(&t);
    struct scram_cred c = cred_of(SCRAM_SHA_256, "pw");
    cr_assert_eq(users_set(&u, "alice", &c), 0);
    cr_assert_eq(users_set(&u, "bob", &c), 0);
    size_t len;
    char *text = file_of(&u, &len);
    cr_assert_eq(users_decode(&t, text, len), 0);
    cr_assert_eq(t.count, 2);
    for (size_t i = 0; i < len; i++) {
        char was = text[i];
        text[i] = (char)(was ^ 0x01);
        cr_assert_eq(users_decode(&t, text, len), -NG_ECORRUPT, "byte %zu changed", i);
        text[i] = was;
    }
    for (size_t cut = 0; cut < len; cut++) {
        cr_assert_eq(users_decode(&t, text, cut), -NG_ECORRUPT, "cut at %zu", cut);
    }
    cr_assert_eq(t.count, 2, "a refused file leaves the table as it was");
    users_close(&u);
    users_close(&t);
}

Test(users, a_file_with_lines_out_of_order_or_twice_is_refused)
{
    struct users u, t;
    users_init(&u);
    users_init(&t);
    struct scram_cred c = cred_of(SCRAM_SHA_256, "pw");
    cr_assert_eq(users_set(&u, "bob", &c), 0);
    cr_assert_eq(users_set(&u, "alice", &c), 0);
    cr_assert_str_eq(u.v[0].name, "alice"); /* sorted in memory */
    size_t len;
    char *text = file_of(&u, &len);
    /* swap the two names: out of order, checksum made good again */
    char swapped[4096];
    char *a = strstr(text, "alice "), *b = strstr(text, "bob ");
    cr_assert(a != NULL && b != NULL && a < b);
    size_t al = (size_t)(strchr(a, '\n') - a) + 1, bl = (size_t)(strchr(b, '\n') - b) + 1;
    size_t head = (size_t)(a - text);
    memcpy(swapped, text, head);
    memcpy(swapped + head, b, bl);
    memcpy(swapped + head + bl, a, al);
    size_t body = head + al + bl;
    char sumline[64];
    snprintf(sumline, sizeof(sumline), "checksum %016llx\n",
             (unsigned long long)XXH3_64bits(swapped, body));
    memcpy(swapped + body, sumline, strlen(sumline));
    cr_assert_eq(users_decode(&t, swapped, body + strlen(sumline)), -NG_ECORRUPT);
    users_close(&u);
    users_close(&t);
}

Test(users, a_credentials_text_reads_back_and_bad_text_is_refused)
{
    struct scram_cred c = cred_of(SCRAM_SHA_512, "pw"), back;
    char text[USERS_LINE_BYTES_MAX];
    int n = users_cred_format(&c, text, sizeof(text));
    cr_assert_gt(n, 0);
    cr_assert_eq(users_cred_parse(SCRAM_SHA_512, text, (size_t)n, &back), 0);
    cr_assert(memcmp(&c, &back, sizeof(c)) == 0);
    cr_assert_eq(users_cred_parse(SCRAM_SHA_256, text, (size_t)n, &back), -NG_ECORRUPT,
                 "SHA-512 keys are not SHA-256 ones");
    const char *bad[] = {"",
                         "4096",
                         "100 AAAA AAAA AAAA",
                         "4096 AAAA AAAA",
                         "x096 AAAA A A",
                         "4096  AAAA AAAA AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(users_cred_parse(SCRAM_SHA_256, bad[i], strlen(bad[i]), &back), -NG_ECORRUPT,
                     "%s", bad[i]);
    }
    cr_assert_eq(users_cred_format(&c, text, 10), -NG_ENOSPACE);
}
