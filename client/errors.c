/* client/errors.c — nagare_strerror() and nagare_version(). The public
 * NAGARE_E* codes are base/err.h's NG_E*: the same numbers the wire carries. */
#include "base/err.h"
#include "client/nagare.h"

#include <assert.h>

#ifndef NAGARE_VERSION
#error "NAGARE_VERSION is set by client/meson.build"
#endif

#define SAME(name) \
    static_assert((int)NAGARE_##name == (int)NG_##name, #name " differs from base/err.h")
SAME(ETRUNCATED);
SAME(EBADVARINT);
SAME(ENOSPACE);
SAME(EBADLEN);
SAME(EBADCOUNT);
SAME(ECHECKSUM);
SAME(EBADVERSION);
SAME(EBADCODEC);
SAME(EDECOMPRESS);
SAME(EBADDELTA);
SAME(ETOOBIG);
SAME(EBADARG);
SAME(EOFFSET_RANGE);
SAME(EFAILED);
SAME(ECORRUPT);
SAME(EBUSY);
SAME(ECLOSED);
SAME(ENOTFOUND);
SAME(EUNKNOWN_API);
SAME(EUNKNOWN_TOPIC);
SAME(ETOPIC_EXISTS);
SAME(EBADNAME);
SAME(EOUT_OF_ORDER);
SAME(EPRODUCER_FENCED);
SAME(ETIMEOUT);
SAME(EREBALANCE);
SAME(EILLEGAL_GENERATION);
SAME(EUNKNOWN_MEMBER);
SAME(EGROUP_NOT_EMPTY);
SAME(EDISCONNECTED);
SAME(EPROTO);
SAME(ESYSTEM);
SAME(EDISK_FULL);
SAME(ENOT_ACQUIRED);
SAME(ETRANSACTIONAL);

const char *nagare_strerror(int rc) { return err_str(rc); }

const char *nagare_version(void) { return NAGARE_VERSION; }
