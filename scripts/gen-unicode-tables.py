#!/usr/bin/python3
"""Generates src/engine/text/unicode_data.h from the Unicode Character Database.

The tokenizers need a few Unicode properties per code point: the general
category class (letter, number, punctuation, symbol, mark, separator,
control), White_Space, the simple lowercase mapping and the first code
point of the canonical decomposition (WordPiece strips accents that way,
as llama.cpp does), plus the tables NFC needs.

The data is read from the UCD text files (UnicodeData.txt, PropList.txt,
DerivedNormalizationProps.txt), not from Python's unicodedata, so that the
Unicode version follows the files and not the Python that runs this: the
reference tokenizers (llama.cpp's tables are Unicode 15.1, Node's ICU is as
new) know characters that an older Python reports as unassigned.  Debian's
unicode-data package installs them in /usr/share/unicode.

Run: apt-get install unicode-data
     /usr/bin/python3 scripts/gen-unicode-tables.py [UCD_DIR] > src/engine/text/unicode_data.h
"""
import os
import sys

LETTER, NUMBER, PUNCT, SYMBOL, MARK, SEP, CONTROL, WS = 1, 2, 4, 8, 16, 32, 64, 128
CLASS = {'L': LETTER, 'N': NUMBER, 'P': PUNCT, 'S': SYMBOL, 'M': MARK, 'Z': SEP}
# Cn (unassigned) is no class at all, as in llama.cpp: such a character is
# neither dropped as a control nor split off as punctuation.
CONTROL_CATS = ('Cc', 'Cf', 'Co', 'Cs')

S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
V_COUNT, T_COUNT, S_COUNT = 21, 28, 11172


def ucd_lines(path):
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                yield [x.strip() for x in line.split(';')]


def cp_range(field):
    if '..' in field:
        a, b = field.split('..')
        return range(int(a, 16), int(b, 16) + 1)
    return range(int(field, 16), int(field, 16) + 1)


class UCD:
    def __init__(self, d):
        self.cat = {}      # cp -> general category (assigned code points only)
        self.ccc = {}      # cp -> canonical combining class (non-zero only)
        self.decomp = {}   # cp -> canonical decomposition mapping (one level)
        self.lower = {}    # cp -> simple lowercase mapping
        first = None
        for f in ucd_lines(os.path.join(d, 'UnicodeData.txt')):
            cp, name, cat = int(f[0], 16), f[1], f[2]
            if name.endswith(', First>'):
                first = cp
                continue
            cps = range(first, cp + 1) if name.endswith(', Last>') else [cp]
            first = None
            for c in cps:
                self.cat[c] = cat
                if int(f[3]):
                    self.ccc[c] = int(f[3])
            if f[5] and not f[5].startswith('<'):
                self.decomp[cp] = [int(x, 16) for x in f[5].split()]
            if f[13]:
                self.lower[cp] = int(f[13], 16)
        self.white = set()
        for f in ucd_lines(os.path.join(d, 'PropList.txt')):
            if f[1] == 'White_Space':
                self.white.update(cp_range(f[0]))
        self.excluded = set()
        for f in ucd_lines(os.path.join(d, 'DerivedNormalizationProps.txt')):
            if f[1] == 'Full_Composition_Exclusion':
                self.excluded.update(cp_range(f[0]))
        self.version = '?'
        with open(os.path.join(d, 'DerivedNormalizationProps.txt'), encoding='utf-8') as f:
            head = f.readline()
        if head.startswith('# DerivedNormalizationProps-'):
            self.version = head.split('-', 1)[1].rsplit('.txt', 1)[0]

    def nfd(self, cp):
        """Full canonical decomposition of one code point, canonically ordered."""
        if S_BASE <= cp < S_BASE + S_COUNT:
            s = cp - S_BASE
            out = [L_BASE + s // (V_COUNT * T_COUNT), V_BASE + (s % (V_COUNT * T_COUNT)) // T_COUNT]
            if s % T_COUNT:
                out.append(T_BASE + s % T_COUNT)
            return out
        out = []
        stack = [cp]
        while stack:
            c = stack.pop()
            if c in self.decomp:
                stack.extend(reversed(self.decomp[c]))
            else:
                out.append(c)
        # canonical ordering: a stable sort of each run of non-starters
        for i in range(1, len(out)):
            j = i
            while j > 0 and self.ccc.get(out[i], 0) and self.ccc.get(out[j - 1], 0) > self.ccc.get(out[i], 0):
                j -= 1
            if j != i:
                out.insert(j, out.pop(i))
        return out

    def flags(self, cp):
        cat = self.cat.get(cp, 'Cn')
        f = CLASS.get(cat[0], 0)
        if cat in CONTROL_CATS:
            f |= CONTROL
        if cp in self.white:
            f |= WS
        return f


def is_hangul_syllable(cp):
    return S_BASE <= cp < S_BASE + S_COUNT


def write_nfc_tables(u, out):
    """Tables for NFC: combining classes, full canonical decompositions
    (Hangul syllables excluded: they are algorithmic) and the primary
    composite pairs (a two-part canonical decomposition of a character that
    is not excluded from composition)."""
    out.write('static const struct ucd_map ucd_ccc[] = {\n')
    for cp in sorted(u.ccc):
        out.write('    {0x%X, %d},\n' % (cp, u.ccc[cp]))
    out.write('};\n')
    decomp, flat, comp = [], [], []
    for cp in sorted(u.decomp):
        d = u.nfd(cp)
        decomp.append((cp, len(flat), len(d)))
        flat.extend(d)
        parts = u.decomp[cp]
        if len(parts) == 2 and cp not in u.excluded:
            comp.append((parts[0], parts[1], cp))
    out.write('static const uint32_t ucd_decomp_cps[] = {\n')
    for i in range(0, len(flat), 12):
        out.write('    ' + ', '.join('0x%X' % x for x in flat[i:i + 12]) + ',\n')
    out.write('};\n')
    out.write('static const struct ucd_decomp { uint32_t cp; uint16_t off; uint8_t len; } ucd_decomp[] = {\n')
    for cp, off, n in decomp:
        out.write('    {0x%X, %d, %d},\n' % (cp, off, n))
    out.write('};\n')
    comp.sort()
    out.write('static const struct ucd_comp { uint32_t a, b, c; } ucd_comp[] = {\n')
    for a, b, c in comp:
        out.write('    {0x%X, 0x%X, 0x%X},\n' % (a, b, c))
    out.write('};\n')


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else '/usr/share/unicode'
    if not os.path.exists(os.path.join(d, 'UnicodeData.txt')):
        sys.exit('gen-unicode-tables: no UnicodeData.txt in %s (apt-get install unicode-data)' % d)
    u = UCD(d)
    out = sys.stdout
    out.write('/* unicode_data.h - generated by scripts/gen-unicode-tables.py from the\n'
              ' * Unicode Character Database %s.  Do not edit. */\n' % u.version)
    ranges = []
    cur = None
    for cp in range(0x110000):
        f = u.flags(cp)
        if cur and cur[2] == f and cur[1] == cp - 1:
            cur[1] = cp
        else:
            if cur and cur[2]:
                ranges.append(cur)
            cur = [cp, cp, f]
    if cur and cur[2]:
        ranges.append(cur)
    out.write('static const struct ucd_range { uint32_t lo, hi; uint8_t flags; } ucd_ranges[] = {\n')
    for lo, hi, f in ranges:
        out.write('    {0x%X, 0x%X, %d},\n' % (lo, hi, f))
    out.write('};\n')
    out.write('static const struct ucd_map { uint32_t from, to; } ucd_lower[] = {\n')
    for cp in sorted(u.lower):
        if u.lower[cp] != cp:
            out.write('    {0x%X, 0x%X},\n' % (cp, u.lower[cp]))
    out.write('};\n')
    # The first code point of each character's NFD (Hangul syllables give
    # their leading consonant): llama.cpp's WordPiece keeps only that one.
    out.write('static const struct ucd_map ucd_nfd[] = {\n')
    for cp in range(0x110000):
        if cp in u.decomp or is_hangul_syllable(cp):
            first = u.nfd(cp)[0]
            if first != cp:
                out.write('    {0x%X, 0x%X},\n' % (cp, first))
    out.write('};\n')
    write_nfc_tables(u, out)


main()
