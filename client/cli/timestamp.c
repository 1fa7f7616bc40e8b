/* The TIME argument of `nagare consume --from` (timestamp.h). */
#include "client/cli/timestamp.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "client/cli/cli.h"

/* A cursor over the text with a sticky error, read once at the end. */
struct tp {
    const char *s;
    bool bad;
};

/* Exactly n decimal digits. */
static int tp_digits(struct tp *t, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (t->bad || !isdigit((unsigned char)*t->s)) {
            t->bad = true;
            return 0;
        }
        v = v * 10 + (*t->s++ - '0');
    }
    return v;
}

static void tp_expect(struct tp *t, const char *any)
{
    if (t->bad || *t->s == '\0' || strchr(any, *t->s) == NULL) {
        t->bad = true;
        return;
    }
    t->s++;
}

static bool tp_accept(struct tp *t, char c)
{
    if (!t->bad && *t->s == c) {
        t->s++;
        return true;
    }
    return false;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant, "chrono-compatible low-level date algorithms"). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* ".fff..." after the seconds: milliseconds, extra digits cut off. */
static int tp_fraction(struct tp *t)
{
    if (!tp_accept(t, '.') && !tp_accept(t, ',')) {
        return 0;
    }
    int ms = 0;
    int n = 0;
    while (!t->bad && isdigit((unsigned char)*t->s)) {
        if (n < 3) {
            ms = ms * 10 + (*t->s - '0');
        }
        n++;
        t->s++;
    }
    if (n == 0 || n > 9) {
        t->bad = true;
    }
    for (; n < 3; n++) {
        ms *= 10;
    }
    return ms;
}

/* The zone: Z, or +HH:MM / +HHMM (or -). Returns its offset east of UTC
 * in minutes. */
static int tp_zone(struct tp *t)
{
    if (tp_accept(t, 'Z') || tp_accept(t, 'z')) {
        return 0;
    }
    int sign = tp_accept(t, '-') ? -1 : 1;
    if (sign > 0) {
        tp_expect(t, "+");
    }
    int hh = tp_digits(t, 2);
    (void)tp_accept(t, ':');
    int mm = tp_digits(t, 2);
    if (hh > 23 || mm > 59) {
        t->bad = true;
    }
    return sign * (hh * 60 + mm);
}

static int iso_parse(const char *s, int64_t *ms_out)
{
    struct tp t = {.s = s};
    int y = tp_digits(&t, 4);
    tp_expect(&t, "-");
    int mo = tp_digits(&t, 2);
    tp_expect(&t, "-");
    int d = tp_digits(&t, 2);
    tp_expect(&t, "Tt ");
    int h = tp_digits(&t, 2);
    tp_expect(&t, ":");
    int mi = tp_digits(&t, 2);
    tp_expect(&t, ":");
    int sec = tp_digits(&t, 2);
    int ms = tp_fraction(&t);
    int zone_min = tp_zone(&t);
    if (t.bad || *t.s != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 59) {
        return -NAGARE_EBADARG;
    }
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)zone_min * 60;
    if (secs < 0) {
        return -NAGARE_EBADARG;
    }
    *ms_out = secs * 1000 + ms;
    return 0;
}

int cli_time_parse(const char *s, int64_t *ms_out)
{
    if (s[0] == '@') {
        return cli_parse_i64(s + 1, 0, INT64_MAX, ms_out) ? 0 : -NAGARE_EBADARG;
    }
    return iso_parse(s, ms_out);
}
