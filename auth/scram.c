/*
 * auth/scram.c — SCRAM-SHA-256/512 (auth/scram.h). Message grammar: RFC
 * 5802 section 7; the hashes: RFC 7677.
 */
#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

enum { ST_START = 0, ST_FIRST, ST_CHALLENGED, ST_DONE, ST_FAILED };

/* Random bytes in a nonce: 24 give 32 base64 characters, 192 bits. */
#define NONCE_RANDOM_BYTES 24

static_assert(SCRAM_B64_LEN(NONCE_RANDOM_BYTES) <= SCRAM_NONCE_BYTES_MAX, "our nonce fits");
static_assert(sizeof("User:") - 1 + SCRAM_USER_BYTES_MAX < 256, "a principal holds any user");

static const char *const mech_names[SCRAM_MECH_COUNT] = {
    [SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SCRAM_SHA_512] = "SCRAM-SHA-512",
};

const char *scram_mech_name(enum scram_mech mech)
{
    ASSERT(mech < SCRAM_MECH_COUNT);
    return mech_names[mech];
}

int scram_mech_parse(const char *name, size_t len, enum scram_mech *out)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        if (strlen(mech_names[m]) == len && memcmp(mech_names[m], name, len) == 0) {
            *out = (enum scram_mech)m;
            return 0;
        }
    }
    return -NG_EBADARG;
}

size_t scram_key_bytes(enum scram_mech mech) { return mech == SCRAM_SHA_512 ? 64 : 32; }

static const EVP_MD *md_of(enum scram_mech mech)
{
    return mech == SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

bool scram_user_valid(const char *name, size_t len)
{
    if (len == 0 || len > SCRAM_USER_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '@';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* ---- primitives ---- */

static int hmac(enum scram_mech mech, const uint8_t *key, size_t key_len, const void *msg,
                size_t msg_len, uint8_t *out)
{
    unsigned int n = 0;
    if (HMAC(md_of(mech), key, (int)key_len, msg, msg_len, out, &n) == NULL ||
        n != scram_key_bytes(mech)) {
        return -NG_ESYSTEM;
    }
    return 0;
}

static int digest(enum scram_mech mech, const uint8_t *in, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    if (EVP_Digest(in, len, out, &n, md_of(mech), NULL) != 1 || n != scram_key_bytes(mech)) {
        return -NG_ESYSTEM;
    }
    return 0;
}

/* SaltedPassword, then ClientKey and ServerKey from it (RFC 5802 3). */
static int salted_keys(enum scram_mech mech, const char *password, size_t password_len,
                       const uint8_t *salt, size_t salt_len, uint32_t iterations,
                       uint8_t client_key[SCRAM_KEY_BYTES_MAX],
                       uint8_t server_key[SCRAM_KEY_BYTES_MAX])
{
    size_t kb = scram_key_bytes(mech);
    uint8_t salted[SCRAM_KEY_BYTES_MAX];
    int rc = PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations,
                               md_of(mech), (int)kb, salted) == 1
                 ? 0
                 : -NG_ESYSTEM;
    rc = rc == 0 ? hmac(mech, salted, kb, "Client Key", 10, client_key) : rc;
    rc = rc == 0 ? hmac(mech, salted, kb, "Server Key", 10, server_key) : rc;
    OPENSSL_cleanse(salted, sizeof(salted));
    return rc;
}

int scram_cred_make(enum scram_mech mech, const char *password, size_t password_len,
                    const uint8_t *salt, size_t salt_len, uint32_t iterations,
                    struct scram_cred *out)
{
    ASSERT(mech < SCRAM_MECH_COUNT);
    if (iterations < SCRAM_ITERATIONS_MIN || iterations > SCRAM_ITERATIONS_MAX ||
        password_len == 0 || password_len > SCRAM_PASSWORD_BYTES_MAX ||
        (salt != NULL && (salt_len == 0 || salt_len > SCRAM_SALT_BYTES_MAX))) {
        return -NG_EBADARG;
    }
    memset(out, 0, sizeof(*out));
    out->mech = (uint8_t)mech;
    out->iterations = iterations;
    if (salt != NULL) {
        memcpy(out->salt, salt, salt_len);
        out->salt_len = (uint8_t)salt_len;
    } else {
        if (RAND_bytes(out->salt, SCRAM_SALT_BYTES) != 1) {
            return -NG_ESYSTEM;
        }
        out->salt_len = SCRAM_SALT_BYTES;
    }
    uint8_t client_key[SCRAM_KEY_BYTES_MAX];
    int rc = salted_keys(mech, password, password_len, out->salt, out->salt_len, iterations,
                         client_key, out->server_key);
    rc = rc == 0 ? digest(mech, client_key, scram_key_bytes(mech), out->stored_key) : rc;
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

int scram_cred_check(const struct scram_cred *cred, const char *password, size_t password_len)
{
    enum scram_mech mech = (enum scram_mech)cred->mech;
    ASSERT(mech < SCRAM_MECH_COUNT && cred->salt_len <= SCRAM_SALT_BYTES_MAX);
    if (password_len == 0 || password_len > SCRAM_PASSWORD_BYTES_MAX ||
        cred->iterations < SCRAM_ITERATIONS_MIN || cred->iterations > SCRAM_ITERATIONS_MAX) {
        return -NG_EAUTH;
    }
    size_t kb = scram_key_bytes(mech);
    uint8_t client_key[SCRAM_KEY_BYTES_MAX];
    uint8_t server_key[SCRAM_KEY_BYTES_MAX];
    uint8_t stored_key[SCRAM_KEY_BYTES_MAX];
    int rc = salted_keys(mech, password, password_len, cred->salt, cred->salt_len, cred->iterations,
                         client_key, server_key);
    rc = rc == 0 ? digest(mech, client_key, kb, stored_key) : rc;
    if (rc == 0 && CRYPTO_memcmp(stored_key, cred->stored_key, kb) != 0) {
        rc = -NG_EAUTH;
    }
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    return rc;
}

int scram_cred_fake(enum scram_mech mech, const char *user, size_t user_len,
                    const uint8_t secret[SCRAM_KEY_BYTES_MAX], struct scram_cred *out)
{
    ASSERT(mech < SCRAM_MECH_COUNT && user_len <= SCRAM_USER_BYTES_MAX);
    char msg[sizeof("SCRAM-SHA-512:") + SCRAM_USER_BYTES_MAX];
    int n = snprintf(msg, sizeof(msg), "%s:%.*s", mech_names[mech], (int)user_len, user);
    ASSERT(n > 0 && (size_t)n < sizeof(msg));
    memset(out, 0, sizeof(*out));
    out->mech = (uint8_t)mech;
    out->iterations = SCRAM_ITERATIONS_MIN;
    out->salt_len = SCRAM_SALT_BYTES;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret, SCRAM_KEY_BYTES_MAX, (const uint8_t *)msg, (size_t)n, mac,
             &mac_len) == NULL ||
        RAND_bytes(out->stored_key, SCRAM_KEY_BYTES_MAX) != 1 ||
        RAND_bytes(out->server_key, SCRAM_KEY_BYTES_MAX) != 1) {
        return -NG_ESYSTEM;
    }
    static_assert(SCRAM_SALT_BYTES <= 32, "a SHA-256 HMAC gives the fake salt");
    memcpy(out->salt, mac, SCRAM_SALT_BYTES);
    return 0;
}

/* ---- base64 ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int scram_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t need = SCRAM_B64_LEN(n);
    if (need + 1 > cap || need > INT32_MAX) {
        return -NG_ENOSPACE;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        v |= i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? in[i + 2] : 0;
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64_chars, c) : NULL;
    return p != NULL ? (int)(p - b64_chars) : -1;
}

int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 != 0) {
        return -NG_EBADARG;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = k >= 4 - (size_t)pad ? 0 : b64_value(in[i + k]);
            if (d < 0) {
                return -NG_EBADARG;
            }
            v = v << 6 | (uint32_t)d;
        }
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > cap) {
            return -NG_ENOSPACE;
        }
        /* canonical: the bits under the padding are zero */
        if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0)) {
            return -NG_EBADARG;
        }
        out[o++] = (uint8_t)(v >> 16);
        if (bytes > 1) {
            out[o++] = (uint8_t)(v >> 8);
        }
        if (bytes > 2) {
            out[o++] = (uint8_t)v;
        }
    }
    return (int)o;
}

/* ---- message parsing ---- */

/* A reader over one SCRAM message: attributes "x=value" separated by ','. */
struct attr_rd {
    const char *p;
    size_t len;
    size_t pos;
};

/* Reads attribute `name` next, its value up to the next ',' or the end.
 * False when the next attribute is another, the message ends, or a ','
 * ends it. */
static bool attr_next(struct attr_rd *r, char name, const char **val, size_t *val_len)
{
    if (r->pos + 2 > r->len || r->p[r->pos] != name || r->p[r->pos + 1] != '=') {
        return false;
    }
    size_t start = r->pos + 2, end = start;
    while (end < r->len && r->p[end] != ',') {
        end++;
    }
    if (end + 1 == r->len) {
        return false; /* a ',' with nothing after it */
    }
    *val = r->p + start;
    *val_len = end - start;
    r->pos = end < r->len ? end + 1 : end;
    return true;
}

/* Whether the reader stopped right after a ',' (more attributes follow). */
static bool attr_more(const struct attr_rd *r)
{
    return r->pos > 0 && r->pos < r->len && r->p[r->pos - 1] == ',';
}

/* Skips optional extensions ("x=...", x a letter but those given) up to an
 * attribute in stop or the end. False for anything else. */
static bool attr_skip_extensions(struct attr_rd *r, const char *stop)
{
    while (attr_more(r) && strchr(stop, r->p[r->pos]) == NULL) {
        char c = r->p[r->pos];
        const char *v;
        size_t vl;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || !attr_next(r, c, &v, &vl)) {
            return false;
        }
    }
    return true;
}

/* A nonce: printable ASCII but ',' (RFC 5802's "printable"). */
static bool nonce_valid(const char *p, size_t len)
{
    if (len == 0 || len > SCRAM_NONCE_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',') {
            return false;
        }
    }
    return true;
}

static bool msg_printable(const uint8_t *msg, size_t len)
{
    if (len == 0 || len > SCRAM_MSG_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (msg[i] < 0x20 || msg[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* Appends s[0..n) to the AuthMessage buffer buf (*len its length). */
static bool auth_append(char *buf, size_t cap, uint16_t *len, const char *s, size_t n)
{
    if ((size_t)*len + n > cap) {
        return false;
    }
    memcpy(buf + *len, s, n);
    *len = (uint16_t)(*len + n);
    return true;
}

static_assert(3 * SCRAM_MSG_BYTES_MAX <= UINT16_MAX, "AuthMessage lengths fit a u16");

/* The random part of a nonce: base64 of NONCE_RANDOM_BYTES random bytes. */
static int nonce_make(char *out, size_t cap)
{
    uint8_t raw[NONCE_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -NG_ESYSTEM;
    }
    return scram_b64_encode(raw, sizeof(raw), out, cap) < 0 ? -NG_ENOSPACE : 0;
}

/* ---- server ---- */

void scram_server_init(struct scram_server *s, enum scram_mech mech)
{
    ASSERT(mech < SCRAM_MECH_COUNT);
    memset(s, 0, sizeof(*s));
    s->mech = (uint8_t)mech;
    s->state = ST_START;
}

int scram_server_first(struct scram_server *s, const uint8_t *msg, size_t len)
{
    ASSERT(s->state == ST_START);
    s->state = ST_FAILED;
    if (!msg_printable(msg, len) || len < 3) {
        return -NG_EAUTH;
    }
    const char *m = (const char *)msg;
    /* gs2-header: "n,," (no channel binding) or "y,," (client could but
     * thinks the server cannot); "p=" and an authzid are refused. */
    if ((m[0] != 'n' && m[0] != 'y') || m[1] != ',' || m[2] != ',') {
        return -NG_EAUTH;
    }
    s->cbind_y = m[0] == 'y';
    struct attr_rd r = {.p = m + 3, .len = len - 3};
    const char *user, *nonce;
    size_t user_len, nonce_len;
    if (!attr_next(&r, 'n', &user, &user_len) || !scram_user_valid(user, user_len) ||
        !attr_more(&r) || !attr_next(&r, 'r', &nonce, &nonce_len) ||
        !nonce_valid(nonce, nonce_len) || !attr_skip_extensions(&r, "") || r.pos != r.len) {
        return -NG_EAUTH;
    }
    memcpy(s->user, user, user_len);
    s->user[user_len] = '\0';
    s->user_len = (uint16_t)user_len;
    memcpy(s->nonce, nonce, nonce_len);
    s->client_nonce_len = (uint16_t)nonce_len;
    s->auth_len = 0;
    (void)auth_append(s->auth_msg, sizeof(s->auth_msg), &s->auth_len, m + 3, len - 3);
    s->state = ST_FIRST;
    return 0;
}

int scram_server_challenge(struct scram_server *s, const struct scram_cred *cred, const char *nonce,
                           char *out, size_t cap, size_t *len_out)
{
    ASSERT(s->state == ST_FIRST && cred->mech == s->mech);
    s->state = ST_FAILED;
    char ours[SCRAM_NONCE_BYTES_MAX + 1];
    if (nonce == NULL) {
        int rc = nonce_make(ours, sizeof(ours));
        if (rc != 0) {
            return rc;
        }
        nonce = ours;
    }
    size_t ours_len = strlen(nonce);
    ASSERT(nonce_valid(nonce, ours_len));
    memcpy(s->nonce + s->client_nonce_len, nonce, ours_len);
    s->nonce[s->client_nonce_len + ours_len] = '\0';
    char salt[SCRAM_B64_LEN(SCRAM_SALT_BYTES_MAX) + 1];
    int rc = scram_b64_encode(cred->salt, cred->salt_len, salt, sizeof(salt));
    ASSERT(rc > 0);
    int n = snprintf(out, cap, "r=%s,s=%s,i=%u", s->nonce, salt, cred->iterations);
    if (n < 0 || (size_t)n >= cap ||
        !auth_append(s->auth_msg, sizeof(s->auth_msg), &s->auth_len, ",", 1) ||
        !auth_append(s->auth_msg, sizeof(s->auth_msg), &s->auth_len, out, (size_t)n)) {
        return -NG_ENOSPACE;
    }
    s->cred = *cred;
    *len_out = (size_t)n;
    s->state = ST_CHALLENGED;
    return 0;
}

/* Whether client-final's nonce n[0..len) is the one server-first gave: the
 * client's and the server's parts (RFC 5802), or the client's part and
 * then both, as librdkafka up to 2.x sends it (Kafka's broker checks only
 * that the nonce ends with its own part). Both carry the server's part in
 * full, and the proof covers the nonce as sent. */
static bool final_nonce_ok(const struct scram_server *s, const char *n, size_t len)
{
    size_t full = strlen(s->nonce), c = s->client_nonce_len;
    if (len == full) {
        return memcmp(n, s->nonce, full) == 0;
    }
    return len == c + full && memcmp(n, s->nonce, c) == 0 && memcmp(n + c, s->nonce, full) == 0;
}

/* Checks client-final's grammar and echoes; on success *proof_out holds the
 * decoded proof and the AuthMessage is complete. */
static int server_final_parse(struct scram_server *s, const char *m, size_t len,
                              uint8_t proof[SCRAM_KEY_BYTES_MAX])
{
    struct attr_rd r = {.p = m, .len = len};
    const char *cb, *nonce, *p;
    size_t cb_len, nonce_len, p_len;
    const char *want_cb = s->cbind_y ? "eSws" : "biws"; /* base64 of "y,," / "n,," */
    if (!attr_next(&r, 'c', &cb, &cb_len) || cb_len != 4 || memcmp(cb, want_cb, 4) != 0 ||
        !attr_more(&r) || !attr_next(&r, 'r', &nonce, &nonce_len) ||
        !final_nonce_ok(s, nonce, nonce_len) || !attr_skip_extensions(&r, "p")) {
        return -NG_EAUTH;
    }
    size_t without_proof = r.pos - 1; /* up to the ',' before "p=" */
    if (!attr_more(&r) || !attr_next(&r, 'p', &p, &p_len) || r.pos != r.len ||
        p_len != SCRAM_B64_LEN(scram_key_bytes(s->mech)) ||
        scram_b64_decode(p, p_len, proof, SCRAM_KEY_BYTES_MAX) != (int)scram_key_bytes(s->mech)) {
        return -NG_EAUTH;
    }
    if (!auth_append(s->auth_msg, sizeof(s->auth_msg), &s->auth_len, ",", 1) ||
        !auth_append(s->auth_msg, sizeof(s->auth_msg), &s->auth_len, m, without_proof)) {
        return -NG_EAUTH;
    }
    return 0;
}

int scram_server_final(struct scram_server *s, const uint8_t *msg, size_t len, char *out,
                       size_t cap, size_t *len_out)
{
    ASSERT(s->state == ST_CHALLENGED);
    s->state = ST_FAILED;
    enum scram_mech mech = s->mech;
    size_t kb = scram_key_bytes(mech);
    uint8_t proof[SCRAM_KEY_BYTES_MAX], sig[SCRAM_KEY_BYTES_MAX], key[SCRAM_KEY_BYTES_MAX];
    uint8_t stored[SCRAM_KEY_BYTES_MAX];
    if (!msg_printable(msg, len) || server_final_parse(s, (const char *)msg, len, proof) != 0) {
        return -NG_EAUTH;
    }
    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); it must hash to
     * StoredKey. Every byte compared, whatever differs. */
    int rc = hmac(mech, s->cred.stored_key, kb, s->auth_msg, s->auth_len, sig);
    for (size_t i = 0; i < kb; i++) {
        key[i] = proof[i] ^ sig[i];
    }
    rc = rc == 0 ? digest(mech, key, kb, stored) : rc;
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != 0) {
        return rc;
    }
    if (CRYPTO_memcmp(stored, s->cred.stored_key, kb) != 0) {
        return -NG_EAUTH;
    }
    rc = hmac(mech, s->cred.server_key, kb, s->auth_msg, s->auth_len, sig);
    char b64[SCRAM_B64_LEN(SCRAM_KEY_BYTES_MAX) + 1];
    if (rc != 0 || scram_b64_encode(sig, kb, b64, sizeof(b64)) < 0) {
        return rc != 0 ? rc : -NG_ENOSPACE;
    }
    int n = snprintf(out, cap, "v=%s", b64);
    if (n < 0 || (size_t)n >= cap) {
        return -NG_ENOSPACE;
    }
    *len_out = (size_t)n;
    s->state = ST_DONE;
    return 0;
}

/* ---- client ---- */

int scram_client_first(struct scram_client *c, enum scram_mech mech, const char *user,
                       const char *password, const char *nonce, char *out, size_t cap,
                       size_t *len_out)
{
    ASSERT(mech < SCRAM_MECH_COUNT);
    memset(c, 0, sizeof(*c));
    c->mech = (uint8_t)mech;
    c->state = ST_FAILED;
    size_t pw_len = strlen(password);
    if (!scram_user_valid(user, strlen(user)) || pw_len == 0 || pw_len > SCRAM_PASSWORD_BYTES_MAX) {
        return -NG_EBADARG;
    }
    memcpy(c->password, password, pw_len + 1);
    if (nonce == NULL) {
        int rc = nonce_make(c->nonce, sizeof(c->nonce));
        if (rc != 0) {
            return rc;
        }
    } else {
        ASSERT(nonce_valid(nonce, strlen(nonce)));
        memcpy(c->nonce, nonce, strlen(nonce) + 1);
    }
    int n = snprintf(c->bare, sizeof(c->bare), "n=%s,r=%s", user, c->nonce);
    ASSERT(n > 0 && (size_t)n < sizeof(c->bare));
    c->bare_len = (uint16_t)n;
    int m = snprintf(out, cap, "n,,%s", c->bare);
    if (m < 0 || (size_t)m >= cap) {
        return -NG_ENOSPACE;
    }
    *len_out = (size_t)m;
    c->state = ST_FIRST;
    return 0;
}

/* Reads server-first: the full nonce (which must extend ours), the salt
 * and the iteration count. */
static int client_parse_first(const struct scram_client *c, const char *m, size_t len,
                              const char **nonce, size_t *nonce_len, uint8_t *salt,
                              size_t *salt_len, uint32_t *iterations)
{
    struct attr_rd r = {.p = m, .len = len};
    const char *s, *i;
    size_t s_len, i_len;
    size_t ours = strlen(c->nonce);
    if (!attr_next(&r, 'r', nonce, nonce_len) || *nonce_len <= ours ||
        *nonce_len > 2 * SCRAM_NONCE_BYTES_MAX || memcmp(*nonce, c->nonce, ours) != 0 ||
        !nonce_valid(*nonce + ours, *nonce_len - ours) || !attr_more(&r) ||
        !attr_next(&r, 's', &s, &s_len) || !attr_more(&r) || !attr_next(&r, 'i', &i, &i_len) ||
        !attr_skip_extensions(&r, "") || r.pos != r.len) {
        return -NG_EAUTH;
    }
    int n = scram_b64_decode(s, s_len, salt, SCRAM_SALT_BYTES_MAX);
    if (n <= 0 || i_len == 0 || i_len > 9) {
        return -NG_EAUTH;
    }
    *salt_len = (size_t)n;
    uint32_t v = 0;
    for (size_t k = 0; k < i_len; k++) {
        if (i[k] < '0' || i[k] > '9') {
            return -NG_EAUTH;
        }
        v = v * 10 + (uint32_t)(i[k] - '0');
    }
    if (v < SCRAM_ITERATIONS_MIN || v > SCRAM_ITERATIONS_MAX) {
        return -NG_EAUTH;
    }
    *iterations = v;
    return 0;
}

int scram_client_final(struct scram_client *c, const uint8_t *msg, size_t len, char *out,
                       size_t cap, size_t *len_out)
{
    ASSERT(c->state == ST_FIRST);
    c->state = ST_FAILED;
    enum scram_mech mech = c->mech;
    size_t kb = scram_key_bytes(mech);
    const char *nonce;
    size_t nonce_len, salt_len;
    uint8_t salt[SCRAM_SALT_BYTES_MAX];
    uint32_t iterations;
    if (!msg_printable(msg, len) ||
        client_parse_first(c, (const char *)msg, len, &nonce, &nonce_len, salt, &salt_len,
                           &iterations) != 0) {
        return -NG_EAUTH;
    }
    int n = snprintf(out, cap, "c=biws,r=%.*s", (int)nonce_len, nonce);
    if (n < 0 || (size_t)n >= cap) {
        return -NG_ENOSPACE;
    }
    c->auth_len = 0;
    if (!auth_append(c->auth_msg, sizeof(c->auth_msg), &c->auth_len, c->bare, c->bare_len) ||
        !auth_append(c->auth_msg, sizeof(c->auth_msg), &c->auth_len, ",", 1) ||
        !auth_append(c->auth_msg, sizeof(c->auth_msg), &c->auth_len, (const char *)msg, len) ||
        !auth_append(c->auth_msg, sizeof(c->auth_msg), &c->auth_len, ",", 1) ||
        !auth_append(c->auth_msg, sizeof(c->auth_msg), &c->auth_len, out, (size_t)n)) {
        return -NG_ENOSPACE;
    }
    uint8_t client_key[SCRAM_KEY_BYTES_MAX], stored[SCRAM_KEY_BYTES_MAX];
    uint8_t sig[SCRAM_KEY_BYTES_MAX];
    int rc = salted_keys(mech, c->password, strlen(c->password), salt, salt_len, iterations,
                         client_key, c->server_key);
    rc = rc == 0 ? digest(mech, client_key, kb, stored) : rc;
    rc = rc == 0 ? hmac(mech, stored, kb, c->auth_msg, c->auth_len, sig) : rc;
    for (size_t i = 0; i < kb; i++) {
        client_key[i] ^= sig[i]; /* now the proof */
    }
    char b64[SCRAM_B64_LEN(SCRAM_KEY_BYTES_MAX) + 1];
    if (rc == 0 && scram_b64_encode(client_key, kb, b64, sizeof(b64)) < 0) {
        rc = -NG_ENOSPACE;
    }
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (rc != 0) {
        return rc;
    }
    int m = snprintf(out + n, cap - (size_t)n, ",p=%s", b64);
    if (m < 0 || (size_t)m >= cap - (size_t)n) {
        return -NG_ENOSPACE;
    }
    *len_out = (size_t)n + (size_t)m;
    c->state = ST_CHALLENGED;
    return 0;
}

bool scram_client_challenged(const struct scram_client *c) { return c->state == ST_CHALLENGED; }

int scram_client_verify(struct scram_client *c, const uint8_t *msg, size_t len)
{
    ASSERT(c->state == ST_CHALLENGED);
    c->state = ST_FAILED;
    size_t kb = scram_key_bytes(c->mech);
    uint8_t want[SCRAM_KEY_BYTES_MAX], got[SCRAM_KEY_BYTES_MAX];
    struct attr_rd r = {.p = (const char *)msg, .len = len};
    const char *v;
    size_t v_len;
    int rc = -NG_EAUTH;
    if (msg_printable(msg, len) && attr_next(&r, 'v', &v, &v_len) && r.pos == r.len &&
        scram_b64_decode(v, v_len, got, sizeof(got)) == (int)kb &&
        hmac(c->mech, c->server_key, kb, c->auth_msg, c->auth_len, want) == 0 &&
        CRYPTO_memcmp(want, got, kb) == 0) {
        rc = 0;
        c->state = ST_DONE;
    }
    scram_client_wipe(c);
    return rc;
}

void scram_client_wipe(struct scram_client *c)
{
    OPENSSL_cleanse(c->password, sizeof(c->password));
    OPENSSL_cleanse(c->server_key, sizeof(c->server_key));
}
