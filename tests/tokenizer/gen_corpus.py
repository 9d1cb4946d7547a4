#!/usr/bin/python3
"""Builds the differential tokenizer corpus: one base64 line per test string.

  gen_corpus.py REPO_ROOT OUT.b64

Strings come from this repository's own sources and docs (each text file cut
into chunks of 1-8 lines), then from generated edge cases: CJK, emoji and
ZWJ sequences, combining marks (decomposed forms, which NFC must compose),
right-to-left text, long whitespace runs, digits and numbers, contractions
in every case, mixed scripts, control characters, special-token texts, and
invalid UTF-8 byte sequences.  A fixed seed makes the corpus reproducible.
"""
import base64
import os
import random
import sys

SKIP_DIRS = {'.git', 'build', '.cache', 'node_modules', 'out', '__pycache__'}
TEXT_EXT = {'.c', '.h', '.md', '.sh', '.py', '.js', '.txt', '.json', '.toml', '.yml', '.yaml', ''}


def repo_strings(root, rng):
    out = []
    for top in sorted(['src', 'tests', 'scripts', 'tools', 'docs', 'bench', 'clients']):
        base = os.path.join(root, top)
        for d, dirs, files in os.walk(base):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.splitext(f)[1] not in TEXT_EXT or os.path.getsize(p) > 2_000_000:
                    continue
                try:
                    data = open(p, 'rb').read()
                except OSError:
                    continue
                if b'\0' in data:
                    continue
                lines = data.split(b'\n')
                chunks, i = [], 0
                while i < len(lines):
                    k = rng.randint(1, 8)
                    chunks.append(b'\n'.join(lines[i:i + k]))
                    i += k
                if len(chunks) > 120:  # generated tables would dominate otherwise
                    chunks = rng.sample(chunks, 120)
                out.extend(c for c in chunks if c.strip())
    for top in ['Makefile', 'README.md', '.gitignore']:
        p = os.path.join(root, top)
        if os.path.exists(p):
            out.append(open(p, 'rb').read()[:4000])
    return out


POOLS = {
    'cjk': ['我想在apple工作', '日本語のテキスト', '한국어 문장입니다', '中文，标点。', '漢字かなカナ', '㐀𠀀𪜀'],
    'emoji': ['🚀', '😶\u200d🌫️', '👨\u200d👩\u200d👧\u200d👦', '🏳️\u200d🌈', '👍🏽', '🦙🦙', '✅', '❤️', '🇫🇷', '1️⃣'],
    'combining': ['e\u0301', 'a\u0308', 'n\u0303', 'o\u0302\u0323', 'A\u030a', '\u1100\u1161\u11a8', 'c\u0327a', 'Z\u0335\u0321', 'i\u0307', 'q\u0307\u0323'],
    'rtl': ['مرحبا بالعالم', 'שלום עולם', 'سلام', 'עברית 123 english', '\u202eabc\u202c', 'ال٣٤٥'],
    'digits': ['0', '1234567890', '3.14159', '1,000,000', '٣٤٥', '१२३', '¼½¾', '10e-5', '0x1F', '２０２４'],
    'contractions': ["I'm", "you're", "he's", "we've", "they'll", "I'd", "DON'T", "We'Re", "IT'S", "ca n't", "'s", "'T", "o'clock", "y'all"],
    'space': [' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\u2003', '\u200b', ' \n ', '\n\n\n'],
    'words': ['Hello', 'world', 'tokenizer', 'ünïcödé', 'naïve', 'Straße', 'İstanbul', 'ǅemal', 'ſtory', 'KELVIN', 'Ωmega'],
    'punct': ['!', '?', '...', '—', '–', '«', '»', '“', '”', '(', ')', '{', '}', '#', '@', '$', '%', '^', '&', '*', '~', '`', '|', '\\', '/'],
    'special': ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|begin_of_text|>', '<|eot_id|>', '<think>', '</think>', '<|im_start', 'im_end|>'],
    'controls': ['\x00', '\x01', '\x07', '\x1b[31m', '\x7f', '\ufeff', '\ufffd', '\u0085', '\u2028'],
    'mixed': ['Ελληνικά', 'Русский текст', 'ไทย', 'ქართული', 'Հայերեն', 'देवनागरी', 'Tiếng Việt', 'ខ្មែរ', 'ᚠᛇᚻ'],
}


def gen_cases(rng, n):
    keys = sorted(POOLS)
    out = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            k = rng.choice(keys)
            s = rng.choice(POOLS[k])
            if rng.random() < 0.2:
                s = s * rng.randint(2, 6)
            parts.append(s)
            if rng.random() < 0.5:
                parts.append(rng.choice([' ', '', '\n', '  ']))
        out.append(''.join(parts).encode('utf-8'))
    # long runs and long words
    for k in [1, 2, 3, 7, 16, 33, 100, 257, 1000]:
        out += [b' ' * k, b'\n' * k, b'\t' * k, (b' \n' * k), b'a' * k, b'9' * k, ('é' * k).encode(), b'!' * k, ('\u3000' * k).encode()]
        out.append(b'x' + b' ' * k + b'y')
    # invalid UTF-8
    bad = [b'\xff', b'\xfe\xff', b'\xc3', b'\xc3(', b'\xe2\x82', b'\xe2\x82(', b'\xf0\x9f\x98', b'\x80', b'\xbf\xbf',
           b'\xc0\xaf', b'\xed\xa0\x80', b'\xf4\x90\x80\x80', b'\xf8\x88\x80\x80\x80', b'\xe0\x80\xaf']
    for b in bad:
        out += [b, b'ok ' + b + b' end', b + b'abc', b'abc' + b, b' ' + b + b' ']
    for _ in range(60):
        parts = [rng.choice(bad) if rng.random() < 0.4 else rng.choice(rng.choice(list(POOLS.values()))).encode() for _ in range(rng.randint(1, 8))]
        out.append(b''.join(parts))
    return out


def main():
    root, dest = sys.argv[1], sys.argv[2]
    rng = random.Random(20261123)
    strings = repo_strings(root, rng)
    strings += gen_cases(rng, 1200)
    with open(dest, 'w') as f:
        for s in strings:
            f.write(base64.b64encode(s).decode() + '\n')
    print(len(strings))


main()
