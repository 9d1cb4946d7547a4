/* quant_types.c - the table of tensor types libinfer knows (block size,
 * bytes per block, name) and the scalar float conversions (fp16, bf16) that
 * every kernel and the quantizers share.  Kept apart from the kernels so that
 * tools (gguf-gen) and the GGUF reader need only this. */
#include "kernels/quant.h"

#include <string.h>

typedef struct {
    uint32_t id;
    const char *name;
    int64_t block_elems;
    size_t block_bytes;
    int supported;
} type_traits;

static const type_traits TYPES[] = {
    {QT_F32, "f32", 1, 4, 1},
    {QT_F16, "f16", 1, 2, 1},
    {QT_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0), 1},
    {QT_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0), 1},
    {QT_Q4_K, "q4_k", QK_K, sizeof(block_q4_K), 1},
    {QT_Q5_K, "q5_k", QK_K, sizeof(block_q5_K), 1},
    {QT_Q6_K, "q6_k", QK_K, sizeof(block_q6_K), 1},
    {QT_Q8_K, "q8_k", QK_K, sizeof(block_q8_K), 0},
    {QT_BF16, "bf16", 1, 2, 1},
};

/* The on-disk sizes are part of the format: a compiler that pads these
 * structs would silently misread every file. */
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

static const type_traits *traits(uint32_t type) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].id == type) return &TYPES[i];
    return NULL;
}

int quant_type_supported(uint32_t type) {
    const type_traits *t = traits(type);
    return t && t->supported;
}

const char *quant_type_name(uint32_t type) {
    static const char *const unknown[] = {"type-unknown"};
    const type_traits *t = traits(type);
    return t ? t->name : unknown[0];
}

int quant_type_from_name(const char *name) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcasecmp(TYPES[i].name, name) == 0) return (int)TYPES[i].id;
    return -1;
}

int64_t quant_block_elems(uint32_t type) {
    const type_traits *t = traits(type);
    return t ? t->block_elems : 0;
}

size_t quant_block_bytes(uint32_t type) {
    const type_traits *t = traits(type);
    return t ? t->block_bytes : 0;
}

size_t quant_row_bytes(uint32_t type, int64_t n) {
    const type_traits *t = traits(type);
    if (!t || n < 0 || n % t->block_elems) return 0;
    return (size_t)(n / t->block_elems) * t->block_bytes;
}

float quant_f16_to_f32(qhalf h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            man &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

qhalf quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx > 0x7f800000) return (qhalf)(sign | 0x7e00); /* NaN */
    if (absx >= 0x477ff000) return (qhalf)(sign | 0x7c00); /* overflow to inf */
    if (absx < 0x38800000) { /* result is subnormal or zero */
        if (absx < 0x33000000) return (qhalf)sign;
        /* value = man * 2^(e-150); in units of the smallest subnormal
         * (2^-24) that is man >> (126 - e), with e in [102, 112]. */
        uint32_t e = absx >> 23;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        uint32_t s = 126 - e;
        uint32_t q = man >> s;
        uint32_t rem = man & ((1u << s) - 1);
        uint32_t halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (qhalf)(sign | q);
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round to nearest even */
    return (qhalf)(sign | ((r - 0x38000000) >> 13));
}

float quant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
