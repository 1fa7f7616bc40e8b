/* Contract tests for auth/scram.h: RFC 7677's exchange byte for byte, both
 * mechanisms end to end, and the server's parser refusing malformed client
 * messages. */
#include <criterion/criterion.h>
#include <string.h>

#include "auth/scram.h"
#include "base/err.h"

/* RFC 7677, section 3. */
#define RFC_USER "user"
#define RFC_PASSWORD "pencil"
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_C1 "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_S1 \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_C2                                                     \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_S2 "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct scram_cred rfc_cred(void)
{
    uint8_t salt[SCRAM_SALT_BYTES_MAX];
    int n = scram_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt));
    cr_assert_eq(n, 16);
    struct scram_cred cred;
    cr_assert_eq(scram_cred_make(SCRAM_SHA_256, RFC_PASSWORD, strlen(RFC_PASSWORD), salt, (size_t)n,
                                 4096, &cred),
                 0);
    return cred;
}

static void expect_msg(const char *got, size_t len, const char *want)
{
    cr_assert_eq(len, strlen(want), "%.*s", (int)len, got);
    cr_assert(memcmp(got, want, len) == 0, "%.*s\nwant %s", (int)len, got, want);
}

Test(scram, rfc7677_example_byte_for_byte)
{
    static struct scram_client c;
    static struct scram_server s;
    char out[SCRAM_MSG_BYTES_MAX];
    size_t len;
    cr_assert_eq(scram_client_first(&c, SCRAM_SHA_256, RFC_USER, RFC_PASSWORD, RFC_CNONCE, out,
                                    sizeof(out), &len),
                 0);
    expect_msg(out, len, RFC_C1);

    scram_server_init(&s, SCRAM_SHA_256);
    cr_assert_eq(scram_server_first(&s, (const uint8_t *)out, len), 0);
    cr_assert_str_eq(s.user, RFC_USER);
    struct scram_cred cred = rfc_cred();
    cr_assert_eq(scram_server_challenge(&s, &cred, RFC_SNONCE, out, sizeof(out), &len), 0);
    expect_msg(out, len, RFC_S1);

    char c2[SCRAM_MSG_BYTES_MAX];
    size_t c2_len;
    cr_assert_eq(scram_client_final(&c, (const uint8_t *)out, len, c2, sizeof(c2), &c2_len), 0);
    expect_msg(c2, c2_len, RFC_C2);

    cr_assert_eq(scram_server_final(&s, (const uint8_t *)c2, c2_len, out, sizeof(out), &len), 0);
    expect_msg(out, len, RFC_S2);
    cr_assert_eq(scram_client_verify(&c, (const uint8_t *)out, len), 0);
}

/* One whole exchange between our client and server; returns the server's
 * verdict on the client's proof. */
static int exchange(enum scram_mech mech, const char *user, const char *password,
                    const struct scram_cred *cred)
{
    static struct scram_client c;
    static struct scram_server s;
    char a[SCRAM_MSG_BYTES_MAX], b[SCRAM_MSG_BYTES_MAX];
    size_t al, bl;
    cr_assert_eq(scram_client_first(&c, mech, user, password, NULL, a, sizeof(a), &al), 0);
    scram_server_init(&s, mech);
    cr_assert_eq(scram_server_first(&s, (const uint8_t *)a, al), 0);
    cr_assert_eq(scram_server_challenge(&s, cred, NULL, b, sizeof(b), &bl), 0);
    cr_assert_eq(scram_client_final(&c, (const uint8_t *)b, bl, a, sizeof(a), &al), 0);
    int rc = scram_server_final(&s, (const uint8_t *)a, al, b, sizeof(b), &bl);
    if (rc == 0) {
        cr_assert_eq(scram_client_verify(&c, (const uint8_t *)b, bl), 0);
    } else {
        scram_client_wipe(&c);
    }
    return rc;
}

Test(scram, both_mechanisms_log_in_and_refuse_a_wrong_password)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        struct scram_cred cred;
        cr_assert_eq(scram_cred_make((enum scram_mech)m, "s3cret", 6, NULL, 0, 4096, &cred), 0);
        cr_assert_eq(cred.salt_len, SCRAM_SALT_BYTES);
        cr_assert_eq(exchange((enum scram_mech)m, "alice", "s3cret", &cred), 0);
        cr_assert_eq(exchange((enum scram_mech)m, "alice", "s3creT", &cred), -NG_EAUTH);
    }
}

Test(scram, an_unknown_user_gets_a_stable_fake_salt_and_is_refused)
{
    uint8_t secret[SCRAM_KEY_BYTES_MAX] = {1, 2, 3};
    struct scram_cred a, b, other;
    cr_assert_eq(scram_cred_fake(SCRAM_SHA_512, "nobody", 6, secret, &a), 0);
    cr_assert_eq(scram_cred_fake(SCRAM_SHA_512, "nobody", 6, secret, &b), 0);
    cr_assert_eq(scram_cred_fake(SCRAM_SHA_512, "nobodz", 6, secret, &other), 0);
    cr_assert_eq(a.salt_len, SCRAM_SALT_BYTES);
    cr_assert(memcmp(a.salt, b.salt, SCRAM_SALT_BYTES) == 0, "same name, same salt");
    cr_assert(memcmp(a.salt, other.salt, SCRAM_SALT_BYTES) != 0);
    cr_assert_eq(a.iterations, SCRAM_ITERATIONS_MIN);
    cr_assert_eq(exchange(SCRAM_SHA_512, "nobody", "guess", &a), -NG_EAUTH);
}

Test(scram, a_plain_password_checks_against_the_stored_credential)
{
    struct scram_cred rfc = rfc_cred();
    cr_assert_eq(scram_cred_check(&rfc, RFC_PASSWORD, strlen(RFC_PASSWORD)), 0);
    cr_assert_eq(scram_cred_check(&rfc, "pencil2", 7), -NG_EAUTH);
    cr_assert_eq(scram_cred_check(&rfc, "pencil", 5), -NG_EAUTH, "a prefix is not the password");
    cr_assert_eq(scram_cred_check(&rfc, "", 0), -NG_EAUTH);
    static char big[SCRAM_PASSWORD_BYTES_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    cr_assert_eq(scram_cred_check(&rfc, big, sizeof(big) - 1), -NG_EAUTH);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        struct scram_cred c;
        cr_assert_eq(scram_cred_make((enum scram_mech)m, "s3cret", 6, NULL, 0, 4096, &c), 0);
        cr_assert_eq(scram_cred_check(&c, "s3cret", 6), 0);
        cr_assert_eq(scram_cred_check(&c, "s3creT", 6), -NG_EAUTH);
    }
    uint8_t secret[SCRAM_KEY_BYTES_MAX] = {7};
    struct scram_cred fake;
    cr_assert_eq(scram_cred_fake(SCRAM_SHA_256, "nobody", 6, secret, &fake), 0);
    cr_assert_eq(scram_cred_check(&fake, "anything", 8), -NG_EAUTH);
}

Test(scram, credentials_refuse_out_of_range_arguments)
{
    struct scram_cred cred;
    cr_assert_eq(scram_cred_make(SCRAM_SHA_256, "pw", 2, NULL, 0, 4095, &cred), -NG_EBADARG);
    cr_assert_eq(scram_cred_make(SCRAM_SHA_256, "pw", 2, NULL, 0, SCRAM_ITERATIONS_MAX + 1, &cred),
                 -NG_EBADARG);
    cr_assert_eq(scram_cred_make(SCRAM_SHA_256, "", 0, NULL, 0, 4096, &cred), -NG_EBADARG);
    uint8_t salt[1] = {0};
    cr_assert_eq(scram_cred_make(SCRAM_SHA_256, "pw", 2, salt, 0, 4096, &cred), -NG_EBADARG);
    enum scram_mech m;
    cr_assert_eq(scram_mech_parse("SCRAM-SHA-512", 13, &m), 0);
    cr_assert_eq(m, SCRAM_SHA_512);
    cr_assert_eq(scram_mech_parse("SCRAM-SHA-1", 11, &m), -NG_EBADARG);
    cr_assert_eq(scram_mech_parse("scram-sha-256", 13, &m), -NG_EBADARG);
}

Test(scram, base64_is_strict)
{
    uint8_t out[8];
    cr_assert_eq(scram_b64_decode("Zm9v", 4, out, sizeof(out)), 3);
    cr_assert_eq(scram_b64_decode("Zm8=", 4, out, sizeof(out)), 2);
    cr_assert_eq(scram_b64_decode("Zg==", 4, out, sizeof(out)), 1);
    cr_assert_eq(scram_b64_decode("", 0, out, sizeof(out)), 0);
    const char *bad[] = {"Zm9", "Zm9v=", "Z===", "Zm=v", "Zh==", "Zm9!", "Zm 9", "=m9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(scram_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -NG_EBADARG, "%s",
                     bad[i]);
    }
    cr_assert_eq(scram_b64_decode("Zm9vZm9vZm9v", 12, out, sizeof(out)), -NG_ENOSPACE);
    char enc[8];
    cr_assert_eq(scram_b64_encode((const uint8_t *)"foo", 3, enc, sizeof(enc)), 4);
    cr_assert_str_eq(enc, "Zm9v");
    cr_assert_eq(scram_b64_encode((const uint8_t *)"foobar", 6, enc, sizeof(enc)), -NG_ENOSPACE);
}

Test(scram, the_server_refuses_malformed_client_first_messages)
{
    const char *bad[] = {
        "",
        "n,,",
        "n,,n=user",                  /* no nonce */
        "n,,r=abc,n=user",            /* attributes out of order */
        "p=tls-unique,,n=user,r=abc", /* channel binding asked for */
        "n,a=admin,n=user,r=abc",     /* authzid */
        "x,,n=user,r=abc",            /* unknown gs2 flag */
        "n,,m=ext,n=user,r=abc",      /* mandatory extension */
        "n,,n=,r=abc",                /* empty user */
        "n,,n=us=2Cer,r=abc",         /* a name we never accept */
        "n,,n=user,r=",               /* empty nonce */
        "n,,n=user,r=ab,c",           /* a bare ',' in the nonce */
        "n,,n=user,r=abc,",           /* trailing ',' */
        "n,,n=user,r=abc,1=x",        /* extension not a letter */
        "n,,n=user,r=ab\x01"
        "c",                   /* control byte */
        "n,,n=user,r=abc\xff", /* not ASCII */
        "n,n=user,r=abc",      /* gs2 header cut short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        static struct scram_server s;
        scram_server_init(&s, SCRAM_SHA_256);
        cr_assert_eq(scram_server_first(&s, (const uint8_t *)bad[i], strlen(bad[i])), -NG_EAUTH,
                     "accepted: %s", bad[i]);
    }
    static struct scram_server s;
    scram_server_init(&s, SCRAM_SHA_256);
    const char *ext = "y,,n=user,r=abc,t=ignored";
    cr_assert_eq(scram_server_first(&s, (const uint8_t *)ext, strlen(ext)), 0);
}

/* The server after RFC 7677's first two messages. */
static void rfc_server(struct scram_server *s)
{
    char out[SCRAM_MSG_BYTES_MAX];
    size_t len;
    scram_server_init(s, SCRAM_SHA_256);
    cr_assert_eq(scram_server_first(s, (const uint8_t *)RFC_C1, strlen(RFC_C1)), 0);
    struct scram_cred cred = rfc_cred();
    cr_assert_eq(scram_server_challenge(s, &cred, RFC_SNONCE, out, sizeof(out), &len), 0);
}

#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

Test(scram, the_server_refuses_malformed_client_final_messages)
{
    const char *bad[] = {
        "",
        "c=biws,r=" RFC_NONCE,                                 /* no proof */
        "r=" RFC_NONCE ",c=biws,p=" RFC_PROOF,                 /* out of order */
        "c=eSws,r=" RFC_NONCE ",p=" RFC_PROOF,                 /* binding not the first's */
        "c=cD10bHMtdW5pcXVlLCw=,r=" RFC_NONCE ",p=" RFC_PROOF, /* p= binding */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" RFC_PROOF,          /* the client's nonce alone */
        "c=biws,r=" RFC_NONCE "x,p=" RFC_PROOF,                /* nonce extended */
        "c=biws,r=" RFC_CNONCE "x" RFC_NONCE ",p=" RFC_PROOF,  /* not librdkafka's form */
        "c=biws,r=" RFC_CNONCE RFC_CNONCE ",p=" RFC_PROOF,     /* the server's part missing */
        "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",  /* base64 */
        "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVA=", /* wrong */
        "c=biws,r=" RFC_NONCE ",p=dHzb",                                         /* short proof */
        "c=biws,r=" RFC_NONCE ",p=" RFC_PROOF ",x=1", /* after the proof */
        "c=biws,r=" RFC_NONCE ",p=" RFC_PROOF ",",    /* trailing ',' */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        static struct scram_server s;
        rfc_server(&s);
        char out[SCRAM_MSG_BYTES_MAX];
        size_t len;
        cr_assert_eq(
            scram_server_final(&s, (const uint8_t *)bad[i], strlen(bad[i]), out, sizeof(out), &len),
            -NG_EAUTH, "accepted: %s", bad[i]);
    }
}

/* librdkafka (to 2.x at least) sends its own nonce again before the whole
 * one; Kafka's broker accepts it, and so must we: the proof covers it. */
Test(scram, the_server_accepts_librdkafkas_repeated_client_nonce)
{
    static struct scram_server s;
    rfc_server(&s);
    const char *c2 =
        "c=biws,r=" RFC_CNONCE RFC_NONCE ",p=1Y75+q7XaCGJj/r6vyQWwoNxSzV5ksS8xhp5Lqyriec=";
    char out[SCRAM_MSG_BYTES_MAX];
    size_t len;
    cr_assert_eq(scram_server_final(&s, (const uint8_t *)c2, strlen(c2), out, sizeof(out), &len),
                 0);
    expect_msg(out, len, "v=3svB0h5EwFJ/+WVn2GpJ5uBzW8HEv9nm1rcYAhYlm0A=");
}

Test(scram, the_client_refuses_a_server_that_does_not_extend_its_nonce)
{
    const char *bad[] = {
        "r=otherNonce,s=" RFC_SALT ",i=4096",
        "r=" RFC_CNONCE ",s=" RFC_SALT ",i=4096", /* not extended */
        "r=" RFC_NONCE ",s=" RFC_SALT ",i=4095",  /* too few iterations */
        "r=" RFC_NONCE ",s=" RFC_SALT ",i=99999999",
        "r=" RFC_NONCE ",s=" RFC_SALT ",i=40x6",
        "r=" RFC_NONCE ",s=W22,i=4096",
        "r=" RFC_NONCE ",i=4096,s=" RFC_SALT,
        "e=invalid-proof",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        static struct scram_client c;
        char out[SCRAM_MSG_BYTES_MAX];
        size_t len;
        cr_assert_eq(scram_client_first(&c, SCRAM_SHA_256, RFC_USER, RFC_PASSWORD, RFC_CNONCE, out,
                                        sizeof(out), &len),
                     0);
        cr_assert_eq(
            scram_client_final(&c, (const uint8_t *)bad[i], strlen(bad[i]), out, sizeof(out), &len),
            -NG_EAUTH, "accepted: %s", bad[i]);
        scram_client_wipe(&c);
    }
}
