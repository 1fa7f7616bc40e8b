/*
 * libFuzzer target for the SCRAM message parsers (auth/scram.h) and the
 * users file (broker/users.h). The first byte picks the parser, the rest
 * is its input:
 *   0  the server reading client-first;
 *   1  the server reading client-final after RFC 7677's first two messages;
 *   2  the client reading server-first after its client-first;
 *   3  the client reading server-final after RFC 7677's first three;
 *   4  strict base64;
 *   5  the users file.
 * Nothing may be read past its input; a malformed message is refused with
 * -NG_EAUTH (or the base64's, the file's error), never accepted by chance:
 * case 1 accepts only RFC 7677's own proof.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"
#include "base/assert.h"
#include "base/err.h"
#include "broker/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RFC_C1 "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_C2                                                                       \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+" \
    "Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_C2_LIBRDKAFKA                                                                     \
    "c=biws,r=rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=1Y75+" \
    "q7XaCGJj/r6vyQWwoNxSzV5ksS8xhp5Lqyriec="

static struct scram_cred rfc_cred;

static void rfc_setup(void)
{
    static int done;
    if (!done) {
        uint8_t salt[16];
        int n = scram_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt));
        ASSERT(n == 16);
        ASSERT(scram_cred_make(SCRAM_SHA_256, "pencil", 6, salt, 16, 4096, &rfc_cred) == 0);
        done = 1;
    }
}

static void server_final(const uint8_t *in, size_t n)
{
    static struct scram_server s;
    char out[SCRAM_MSG_BYTES_MAX];
    size_t len;
    scram_server_init(&s, SCRAM_SHA_256);
    ASSERT(scram_server_first(&s, (const uint8_t *)RFC_C1, strlen(RFC_C1)) == 0);
    ASSERT(scram_server_challenge(&s, &rfc_cred, RFC_SNONCE, out, sizeof(out), &len) == 0);
    int rc = scram_server_final(&s, in, n, out, sizeof(out), &len);
    bool rfc = (n == strlen(RFC_C2) && memcmp(in, RFC_C2, n) == 0) ||
               (n == strlen(RFC_C2_LIBRDKAFKA) && memcmp(in, RFC_C2_LIBRDKAFKA, n) == 0);
    ASSERT(rfc ? rc == 0 : rc == -NG_EAUTH);
}

static void client_steps(const uint8_t *in, size_t n, bool last)
{
    static struct scram_client c;
    char out[SCRAM_MSG_BYTES_MAX];
    size_t len;
    ASSERT(scram_client_first(&c, SCRAM_SHA_256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO", out,
                              sizeof(out), &len) == 0);
    if (last) {
        const char *s1 = "r=rOprNGfwEbeRWgbNEkqO" RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        ASSERT(scram_client_final(&c, (const uint8_t *)s1, strlen(s1), out, sizeof(out), &len) ==
               0);
        int rc = scram_client_verify(&c, in, n);
        ASSERT(rc == 0 || rc == -NG_EAUTH);
        return;
    }
    int rc = scram_client_final(&c, in, n, out, sizeof(out), &len);
    ASSERT(rc == 0 || rc == -NG_EAUTH);
    scram_client_wipe(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) {
        return 0;
    }
    rfc_setup();
    uint8_t *in = malloc(size - 1 + 1); /* exactly sized (+1: malloc(0)) */
    if (in == NULL) {
        return 0;
    }
    size_t n = size - 1;
    memcpy(in, data + 1, n);
    switch (data[0] % 6) {
    case 0: {
        static struct scram_server s;
        scram_server_init(&s, SCRAM_SHA_512);
        int rc = scram_server_first(&s, in, n);
        ASSERT(rc == 0 ? scram_user_valid(s.user, strlen(s.user)) : rc == -NG_EAUTH);
        break;
    }
    case 1:
        server_final(in, n);
        break;
    case 2:
    case 3:
        client_steps(in, n, data[0] % 6 == 3);
        break;
    case 4: {
        uint8_t out[8192];
        int rc = scram_b64_decode((const char *)in, n, out, sizeof(out));
        ASSERT(rc >= 0 ? (size_t)rc <= n : rc == -NG_EBADARG);
        break;
    }
    default: {
        struct users u;
        users_init(&u);
        int rc = users_decode(&u, (const char *)in, n);
        ASSERT(rc == 0 || rc == -NG_ECORRUPT || rc == -ENOMEM);
        users_close(&u);
        break;
    }
    }
    free(in);
    return 0;
}
