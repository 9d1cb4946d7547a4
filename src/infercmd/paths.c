/* paths.c - model paths confined to infer-models-dir.
 *
 * INFER.LOAD takes a path from a client, and a client must not be able to
 * make the server open any file it can read: the path has to be relative,
 * without a ".." component and without NUL, and is joined to the operator's
 * directory.  Symbolic links placed in that directory by the operator are
 * followed (the directory's contents are the operator's choice). */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ic_confine_path(const char *models_dir, const char *p, size_t len, char **out, char *err,
                    size_t errlen) {
    if (!models_dir || !*models_dir) {
        snprintf(err, errlen, "ERR infer-models-dir is not set: loading models is disabled");
        return -1;
    }
    if (len == 0 || len > 4096 || memchr(p, 0, len)) {
        snprintf(err, errlen, "ERR invalid model path");
        return -1;
    }
    if (p[0] == '/') {
        snprintf(err, errlen, "ERR model path must be relative to infer-models-dir");
        return -1;
    }
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && p[e] != '/') e++;
        if (e - i == 2 && p[i] == '.' && p[i + 1] == '.') {
            snprintf(err, errlen, "ERR model path must not leave infer-models-dir");
            return -1;
        }
        i = e + 1;
    }
    size_t dl = strlen(models_dir);
    char *full = infer_malloc(dl + 1 + len + 1);
    if (!full) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    memcpy(full, models_dir, dl);
    full[dl] = '/';
    memcpy(full + dl + 1, p, len);
    full[dl + 1 + len] = 0;
    *out = full;
    return 0;
}
