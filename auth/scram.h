/*
 * auth/scram.h — SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677):
 * credentials, and both ends of the exchange, on OpenSSL 3's PBKDF2, HMAC
 * and digests.
 *
 * A credential is what the server keeps of a password: salt, iteration
 * count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
 * HMAC(SaltedPassword, "Server Key"); never the password. The exchange is
 * four messages: client-first, server-first, client-final, server-final.
 * The server parses every client message strictly (attribute order, base64,
 * the nonce's prefix; channel binding "n,," or "y,," only, "p=" refused) and
 * compares proofs in constant time; an unknown user gets a fake credential
 * derived from its name (scram_cred_fake) so the answer is the same as for
 * a wrong password.
 *
 * Pure apart from OpenSSL's random bytes: any thread; a struct scram_server
 * or scram_client belongs to one thread at a time. Every function returns
 * 0 or a negative NG_E* code (base/err.h).
 */
#ifndef NAGARE_AUTH_SCRAM_H
#define NAGARE_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

enum scram_mech {
    SCRAM_SHA_256 = 0,
    SCRAM_SHA_512 = 1,
    SCRAM_MECH_COUNT,
};

/* Limits. Keys: SHA-512's 64 bytes. Salt: 16 random bytes made here (RFC
 * 7677's example has 16), up to 64 taken from a peer. Iterations: RFC
 * 7677's minimum 4096; at most Kafka's 16384, so a Kafka tool's
 * credentials fit and a client is never asked to spend more. A user name is
 * 1..128 bytes of letters, digits and "._-@" (scram_user_valid): nothing
 * SCRAM's saslname must escape, nothing a file line or a principal
 * ("User:<name>", PRINCIPAL_BYTES_MAX) cannot hold. A nonce is 1..128
 * printable bytes; a message at most 1 KiB, which every well-formed one
 * with those limits fits. */
#define SCRAM_KEY_BYTES_MAX 64
#define SCRAM_SALT_BYTES 16
#define SCRAM_SALT_BYTES_MAX 64
#define SCRAM_ITERATIONS_MIN 4096
#define SCRAM_ITERATIONS_MAX 16384
#define SCRAM_USER_BYTES_MAX 128
#define SCRAM_NONCE_BYTES_MAX 128
#define SCRAM_MSG_BYTES_MAX 1024
#define SCRAM_PASSWORD_BYTES_MAX 1024

/* "SCRAM-SHA-256", "SCRAM-SHA-512". Static string. */
const char *scram_mech_name(enum scram_mech mech);

/* The mechanism named name[0..len) (exact, case-sensitive, as SASL names
 * are). Returns 0 and *out, or -NG_EBADARG. */
MUST_USE int scram_mech_parse(const char *name, size_t len, enum scram_mech *out);

/* Digest bytes of mech: 32 or 64. */
size_t scram_key_bytes(enum scram_mech mech);

/* Whether name[0..len) is a user name this broker accepts (above). */
bool scram_user_valid(const char *name, size_t len);

/* What the server keeps of one user's password for one mechanism. */
struct scram_cred {
    uint8_t mech; /* enum scram_mech */
    uint8_t salt_len;
    uint32_t iterations;
    uint8_t salt[SCRAM_SALT_BYTES_MAX];
    uint8_t stored_key[SCRAM_KEY_BYTES_MAX]; /* scram_key_bytes(mech) used */
    uint8_t server_key[SCRAM_KEY_BYTES_MAX];
};

/* Derives the credential of password under salt (NULL: SCRAM_SALT_BYTES
 * random bytes) and iterations. Returns 0, -NG_EBADARG (iterations outside
 * [SCRAM_ITERATIONS_MIN, SCRAM_ITERATIONS_MAX], salt_len 0 or over
 * SCRAM_SALT_BYTES_MAX, a password empty or over
 * SCRAM_PASSWORD_BYTES_MAX), -NG_ESYSTEM (OpenSSL failed). */
MUST_USE int scram_cred_make(enum scram_mech mech, const char *password, size_t password_len,
                             const uint8_t *salt, size_t salt_len, uint32_t iterations,
                             struct scram_cred *out);

/* The stand-in credential of a user that does not exist: its salt is
 * HMAC(secret, mech name and user), the same on every attempt, its keys
 * random, its iterations SCRAM_ITERATIONS_MIN; no proof matches it.
 * secret: the server's own random bytes (SCRAM_KEY_BYTES_MAX of them). */
MUST_USE int scram_cred_fake(enum scram_mech mech, const char *user, size_t user_len,
                             const uint8_t secret[SCRAM_KEY_BYTES_MAX], struct scram_cred *out);

/* Whether password is the one cred was made from: SaltedPassword with
 * cred's salt and iterations, ClientKey, StoredKey = H(ClientKey),
 * compared with cred's in constant time (RFC 5802 3). What a plain
 * password login (HTTP Basic on the admin listener) checks against the
 * stored credential; slow by design (PBKDF2): not on an event loop.
 * Returns 0 when it matches, -NG_EAUTH when it does not (a password empty
 * or over SCRAM_PASSWORD_BYTES_MAX included), -NG_ESYSTEM. */
MUST_USE int scram_cred_check(const struct scram_cred *cred, const char *password,
                              size_t password_len);

/* ---- base64 (RFC 4648, padded, no whitespace) ---- */

/* Encoded length of n bytes. */
#define SCRAM_B64_LEN(n) ((((size_t)(n) + 2) / 3) * 4)

/* Writes the base64 of in[0..n) and a NUL into out[0..cap). Returns the
 * length written, or -NG_ENOSPACE. */
MUST_USE int scram_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/* Decodes in[0..n) strictly (length a multiple of 4, padding only at the
 * end, no other byte) into out[0..cap). Returns the bytes decoded,
 * -NG_EBADARG for bad base64, -NG_ENOSPACE. */
MUST_USE int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* ---- the server's side ---- */

struct scram_server {
    uint8_t mech;
    uint8_t state; /* private */
    bool cbind_y;  /* gs2 header was "y,," */
    uint16_t user_len;
    uint16_t client_nonce_len;
    uint16_t auth_len;
    char user[SCRAM_USER_BYTES_MAX + 1];
    char nonce[2 * SCRAM_NONCE_BYTES_MAX + 1]; /* client's + server's */
    char auth_msg[3 * SCRAM_MSG_BYTES_MAX];    /* RFC 5802's AuthMessage */
    struct scram_cred cred;
};

void scram_server_init(struct scram_server *s, enum scram_mech mech);

/* Reads client-first. Returns 0 with the user name in s->user (NUL-
 * terminated, scram_user_valid), or -NG_EAUTH for any malformed message or
 * a user name out of bounds (the caller answers as for a failed login). */
MUST_USE int scram_server_first(struct scram_server *s, const uint8_t *msg, size_t len);

/* Writes server-first into out[0..cap) (no NUL; *len_out its length) for
 * cred, the user's credential of s->mech (the fake one when unknown),
 * with the server's nonce part nonce (NULL: random; tests give RFC 7677's).
 * Precondition: scram_server_first() returned 0. Returns 0, -NG_ENOSPACE,
 * -NG_ESYSTEM. */
MUST_USE int scram_server_challenge(struct scram_server *s, const struct scram_cred *cred,
                                    const char *nonce, char *out, size_t cap, size_t *len_out);

/* Reads client-final and checks its proof. Returns 0 and server-final in
 * out (*len_out), or -NG_EAUTH (malformed, nonce or channel binding not
 * the first message's, or the proof does not match), -NG_ENOSPACE.
 * Precondition: scram_server_challenge() returned 0. */
MUST_USE int scram_server_final(struct scram_server *s, const uint8_t *msg, size_t len, char *out,
                                size_t cap, size_t *len_out);

/* ---- the client's side ---- */

struct scram_client {
    uint8_t mech;
    uint8_t state; /* private */
    uint16_t bare_len;
    uint16_t auth_len;
    char password[SCRAM_PASSWORD_BYTES_MAX + 1];
    char bare[SCRAM_MSG_BYTES_MAX]; /* client-first-message-bare */
    char nonce[SCRAM_NONCE_BYTES_MAX + 1];
    char auth_msg[3 * SCRAM_MSG_BYTES_MAX];
    uint8_t server_key[SCRAM_KEY_BYTES_MAX];
};

/* Starts an exchange as user with password: client-first into out (no
 * NUL; *len_out). nonce: NULL for random (tests give RFC 7677's). Returns
 * 0, -NG_EBADARG (user not scram_user_valid, password empty or too long),
 * -NG_ENOSPACE, -NG_ESYSTEM. */
MUST_USE int scram_client_first(struct scram_client *c, enum scram_mech mech, const char *user,
                                const char *password, const char *nonce, char *out, size_t cap,
                                size_t *len_out);

/* Reads server-first and writes client-final with its proof. Returns 0,
 * -NG_EAUTH (an "e=" error, a malformed message, a nonce not extending
 * ours, iterations outside the limits), -NG_ENOSPACE, -NG_ESYSTEM. */
MUST_USE int scram_client_final(struct scram_client *c, const uint8_t *msg, size_t len, char *out,
                                size_t cap, size_t *len_out);

/* Whether scram_client_final() succeeded: server-final is what comes next. */
bool scram_client_challenged(const struct scram_client *c);

/* Reads server-final: 0 when the server proved it knows our credential,
 * -NG_EAUTH otherwise (an "e=" error, a bad signature). Wipes the
 * password either way. */
MUST_USE int scram_client_verify(struct scram_client *c, const uint8_t *msg, size_t len);

/* Wipes the password and keys of c. */
void scram_client_wipe(struct scram_client *c);

#endif
