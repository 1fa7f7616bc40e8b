/*
 * broker/console_assets.h — the web console's files (broker/console/),
 * built into nagared by broker/console/embed.py: index.html at "/", the
 * others at "/<name>". Served as they are by the HTTP admin listener.
 */
#ifndef NAGARE_BROKER_CONSOLE_ASSETS_H
#define NAGARE_BROKER_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
    const char *path; /* "/", "/console.js" */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct console_asset console_assets[];
extern const size_t console_asset_count;

#endif
