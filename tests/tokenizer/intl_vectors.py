#!/usr/bin/python3
"""The expected ids of the multilingual differential test (tests/tokenizer/intl/).

  intl_vectors.py pack REF_DIR INTL_DIR
      REF_DIR holds llama.cpp's ids, VOCAB.MODE.ref for each vocab and mode
      (make_intl_vectors.sh writes them); stores them compactly in INTL_DIR.
  intl_vectors.py check INTL_DIR OURS_DIR [JS_DIR]
      compares OURS_DIR/VOCAB.MODE.ids (inferkv-cli's) with llama.cpp's ids,
      string by string, and, given JS_DIR/VOCAB.js.ids (the JavaScript
      reference's ids in mode "special", from ref_gguf.js), checks that
      every string where it differs from llama.cpp holds one of the causes
      docs/tokenizers.md lists for that tokenizer.  Prints one line per vocab
      and mode and a last line "PASS FAIL".

Modes: "plain" is no flags; "special" is --parse-special --add-special.
Storage: the mode "plain" ids of bert-bge and llama-spm, one line per corpus
string (phi-3's are llama-spm's: its first 32000 tokens are Llama 2's), and
exceptions.txt for each (vocab, mode, string) whose ids are not those with
the vocab's BOS / [CLS] ... [SEP] added in mode "special".
"""
import base64
import os
import re
import sys
import unicodedata

VOCABS = {  # name: (file of its "plain" ids, ids "special" adds before, after)
    'bert-bge': ('bert-bge', '101', '102'),
    'llama-spm': ('llama-spm', '1', ''),
    'phi-3': ('llama-spm', '1', ''),
}
MODES = ('plain', 'special')


def lines(path):
    with open(path) as f:
        out = f.read().split('\n')
    if out and out[-1] == '':
        out.pop()
    return out


def derived(intl, vocab, mode, base_cache):
    base_name, pre, post = VOCABS[vocab]
    if base_name not in base_cache:
        base_cache[base_name] = lines(os.path.join(intl, base_name + '.ids'))
    base = base_cache[base_name]
    if mode == 'plain':
        return list(base)
    return [' '.join(x for x in (pre, ids, post) if x) for ids in base]


def expected(intl):
    cache, out = {}, {}
    for v in VOCABS:
        for m in MODES:
            out[(v, m)] = derived(intl, v, m, cache)
    for line in lines(os.path.join(intl, 'exceptions.txt')):
        v, m, i, ids = (line.split(' ', 3) + [''])[:4]
        out[(v, m)][int(i)] = ids
    return out


def pack(ref_dir, intl):
    cache = {}
    for base in sorted(set(b for b, _, _ in VOCABS.values())):
        with open(os.path.join(intl, base + '.ids'), 'w') as f:
            f.write('\n'.join(lines(os.path.join(ref_dir, base + '.plain.ref'))) + '\n')
    exc = []
    for v in VOCABS:
        for m in MODES:
            ref = lines(os.path.join(ref_dir, '%s.%s.ref' % (v, m)))
            d = derived(intl, v, m, cache)
            assert len(ref) == len(d), (v, m)
            exc += ['%s %s %d %s' % (v, m, i, ref[i]) for i in range(len(ref)) if ref[i] != d[i]]
    with open(os.path.join(intl, 'exceptions.txt'), 'w') as f:
        f.write('\n'.join(exc) + '\n')


def cjk_ext(c):
    return 0x20000 <= c <= 0x2CEAF or 0x2F800 <= c <= 0x2FA1F


JS_WHITE = '\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'
# Phi-3's special tokens that llama.cpp strips white space after.
PHI3_RSTRIP = re.compile('(?:</s>|<\\|(?:assistant|placeholder[1-6]|system|end|user)\\|>|\\[PAD320[1-6][0-9]\\])'
                         '[ \t\n\v\f\r]*[' + JS_WHITE + ']')


def js_causes(vocab, raw):
    """Why the JavaScript tokenizer may differ from llama.cpp's on raw: the
    differences docs/tokenizers.md lists for that kind of tokenizer."""
    causes = set()
    try:
        s = raw.decode('utf-8')
    except UnicodeDecodeError:
        causes.add('invalid UTF-8')
        s = raw.decode('utf-8', 'replace')
    if vocab == 'phi-3' and PHI3_RSTRIP.search(s):
        causes.add('Unicode white space after a special token')
    if vocab != 'bert-bge':
        return causes
    for ch in s:
        c = ord(ch)
        if unicodedata.category(ch) == 'Cn':
            causes.add('newly assigned character')
        if any(unicodedata.category(x) in ('Mc', 'Me') for x in unicodedata.normalize('NFD', ch)):
            causes.add('spacing or enclosing mark')
        if 0xAC00 <= c <= 0xD7A3:
            causes.add('Hangul syllable')
        if ch in '\x0b\x0c\x85':
            causes.add('VT, FF or NEL')
        if c == 0x3A3:
            causes.add('final sigma')
        if cjk_ext(c):
            causes.add('ideograph beyond the BMP')
    if any(len(w) > 100 for w in re.split(r'\s+', s)):
        causes.add('word over 100 characters')
    return causes


def check(intl, ours_dir, js_dir):
    corpus = lines(os.path.join(intl, 'corpus.b64'))
    exp = expected(intl)
    passed = failed = 0
    for (v, m), want in sorted(exp.items()):
        got = lines(os.path.join(ours_dir, '%s.%s.ids' % (v, m)))
        bad = [i for i in range(len(corpus)) if i >= len(got) or got[i] != want[i]]
        passed += len(corpus) - len(bad)
        failed += len(bad)
        print('%s %s: %d/%d strings identical to llama.cpp' % (v, m, len(corpus) - len(bad), len(corpus)))
        for i in bad[:5]:
            print('  mismatch #%d %r\n    llama.cpp %s\n    inferkv   %s' % (
                i, base64.b64decode(corpus[i])[:60], want[i][:100], got[i][:100] if i < len(got) else '-'))
    for v in VOCABS if js_dir else ():
        js = lines(os.path.join(js_dir, v + '.js.ids'))
        want = exp[(v, 'special')]
        same = sum(1 for i in range(len(corpus)) if i < len(js) and js[i] == want[i])
        tally, unexplained = {}, []
        for i in range(len(corpus)):
            if i < len(js) and js[i] == want[i]:
                continue
            causes = js_causes(v, base64.b64decode(corpus[i]))
            if not causes:
                unexplained.append(i)
            for c in causes:
                tally[c] = tally.get(c, 0) + 1
        print('%s vs @lenml/tokenizers: %d/%d identical to llama.cpp%s' % (
            v, same, len(corpus), '; the rest hold a documented difference: ' +
            ', '.join('%s %d' % kv for kv in sorted(tally.items())) if tally else ''))
        for i in unexplained[:5]:
            print('  unexplained #%d %r\n    llama.cpp %s\n    JS        %s' % (
                i, base64.b64decode(corpus[i])[:60], want[i][:100], js[i][:100] if i < len(js) else '-'))
        passed += len(corpus) - len(unexplained)
        failed += len(unexplained)
    print(passed, failed)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == 'pack':
        pack(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == 'check':
        check(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.exit(__doc__)


main()
