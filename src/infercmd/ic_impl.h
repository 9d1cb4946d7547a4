/* ic_impl.h - what the files of libinfercmd share and nobody else sees. */
#ifndef INFERKV_IC_IMPL_H
#define INFERKV_IC_IMPL_H

#include "infercmd.h"

/* registry.c */
void ic_model_discard(ic_model *m); /* frees a model that was never installed */
int ic_registry_install(ic_registry *r, ic_model *m, char names[][IC_NAME_MAX], int n, char *err,
                        size_t errlen);

/* load.c */
void ic_stop_loads(ic_registry *r); /* shutdown: joins every load thread */

#endif
