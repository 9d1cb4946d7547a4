#!/usr/bin/python3
"""Builds the multilingual corpus of the WordPiece / SentencePiece
differential test: one base64 line per test string.

  gen_intl_corpus.py OUT.b64

Every script and mark class a tokenizer must handle, each as its own kind of
string and then mixed: Latin with precomposed and decomposed accents,
stacked ("Zalgo") marks of every combining block, Greek (polytonic, final
sigma), Cyrillic, Arabic with harakat and Arabic-Indic digits, Hebrew with
niqqud and presentation forms, Devanagari / Bengali / Tamil with virama,
nukta and vowel signs (spacing and not), Thai / Lao / Khmer / Myanmar, CJK
(every ideograph block, compatibility ideographs, kana with voicing marks,
full- and half-width forms), Hangul syllables and jamo, emoji (ZWJ
sequences, keycaps, flags, skin tones, tag sequences, variation selectors),
control and format characters (ZWJ, ZWNJ, BOM, soft hyphen, bidi controls,
private use), punctuation and symbols of every category, every White_Space
character, digits of many scripts, case-mapping oddities, special-token
texts, long words, random code points of every plane, and invalid UTF-8
(never a sequence above U+10FFFF, on which llama.cpp's WordPiece throws).

Code points are listed here, never looked up in Python's unicodedata, and
the generator has a fixed seed, so the corpus does not depend on the Python
that runs it.  The committed corpus (intl/corpus.b64) is what the test
reads; this script is how it was made.
"""
import base64
import random
import sys


def rng_range(a, b):
    return list(range(a, b + 1))


COMBINING = (rng_range(0x300, 0x36F) + rng_range(0x483, 0x489) + rng_range(0x1AB0, 0x1ACE) +
             rng_range(0x1DC0, 0x1DFF) + rng_range(0x20D0, 0x20F0) + rng_range(0xFE20, 0xFE2F))
ENCLOSING = [0x488, 0x489, 0x20DD, 0x20DE, 0x20DF, 0x20E0, 0x20E2, 0x20E3, 0x20E4, 0xA670, 0xA671, 0xA672]
LATIN_PRE = rng_range(0xC0, 0xFF) + rng_range(0x100, 0x17F) + rng_range(0x180, 0x24F) + rng_range(0x1E00, 0x1EFF)
LATIN_WORDS = ['café', 'naïve', 'Ångström', 'façade', 'jalapeño', 'Mötley', 'Crüe', 'Zoë', 'Søren', 'Łódź',
               'Dvořák', 'Ærøskøbing', 'Þórsmörk', 'Straße', 'ĲSSELMEER', 'résumé', 'Việt Nam', 'Tiếng Việt',
               'Nguyễn', 'São Paulo', 'Curaçao', 'İstanbul', 'ıi', 'ǅemal', 'ǈubljana', 'œuvre', 'ﬁnance', 'ﬀ']
GREEK = ['Ελληνικά', 'ΟΔΟΣ', 'ΣΙΣΥΦΟΣ ΣΟΦΟΣ', 'ἀρχῇ ἦν ὁ λόγος', 'Ἀθῆναι', 'ᾅδης', 'ΐΰ', 'ς σ Σ', 'Ω Ω', 'µ μ',
         'ϐϑϒϕϖ', 'Ϊ́', 'α\u0301\u0345']
CYRILLIC = ['Русский текст', 'Ёлка ёж', 'Йошкар-Ола', 'Україна ґїє', 'Српски ђ ћ', 'Қазақ тілі', 'и\u0306',
            'е\u0308', 'ѝ', 'Ӂ', 'а҃', 'о҈', 'А҉']
ARABIC = ['مرحبا بالعالم', 'السَّلَامُ عَلَيْكُمْ', 'بِسْمِ اللَّهِ', 'كِتَابٌ', 'ال٣٤٥', '١٢٣٤٥٦٧٨٩٠', '۱۲۳۴۵۶۷۸۹۰',
          'سعر ٪٥٠', '٣٫١٤', '١٬٠٠٠', 'أين؟', 'نعم، لا؛', 'ﷺ', 'ﻻ', 'ـــ', 'آ', 'إ', 'ؤ', 'ئ',
          'ا\u0653', 'ه\u0654', 'فارسی گ چ پ ژ', 'اردو ے ں', '\u0670']
HEBREW = ['שלום עולם', 'עִבְרִית', 'בְּרֵאשִׁית בָּרָא', 'שָׁלוֹם', 'ירושלים־העיר', 'סוף פסוק׃', 'גֵּרְשַׁיִם״', 'שׁ',
          'שּׂ', 'וֹ', 'ﬠ', 'ﭏ', 'ײַ', 'עברית 123 english', '\u05c7']
DEVANAGARI = ['देवनागरी', 'हिन्दी', 'नमस्ते', 'क्षत्रिय', 'श्री', 'संस्कृतम्', 'ज़रूर', 'क़िला', 'ड़', 'फ़',
              'ऩ', 'ऱ', 'ऴ', 'कि की कु कू के कै को कौ', 'अंग्रेज़ी', 'ॐ', '।', '॥', '०१२३४५६७८९', 'र्‍', 'क्‌ष']
BENGALI = ['বাংলা', 'কোন', 'কৌশল', 'ক্ষ', 'য়', 'ড়', 'ঢ়', 'রবীন্দ্রনাথ', '০১২৩৪৫৬৭৮৯', 'ৎ']
TAMIL = ['தமிழ்', 'கொ', 'கோ', 'கௌ', 'ஸ்ரீ', 'வணக்கம்', '௦௧௨௩௪௫௬௭௮௯', 'ஔ']
INDIC_OTHER = ['ਪੰਜਾਬੀ', 'ગુજરાતી', 'ଓଡ଼ିଆ', 'ତ୍ର', 'తెలుగు', 'ಕನ್ನಡ', 'ಕೋ', 'മലയാളം', 'ൊ', 'සිංහල', 'ශ්‍රී', 'བོད་ཡིག', 'ཀྵ', 'ཱི']
SEA = ['ไทย', 'ภาษาไทย', 'สวัสดีครับ', 'น้ำ', 'กิ่ง', '๐๑๒๓๔๕๖๗๘๙', 'ລາວ', 'ໜ້າ', 'ខ្មែរ', 'ភាសាខ្មែរ', '០១២៣',
       'မြန်မာ', '၀၁၂၃', 'ᬩᬮᬶ', 'ꦗꦮ', 'ᜆᜄᜎᜓᜄ᜔']
OTHER_SCRIPTS = ['ქართული', 'ᲥᲐᲠᲗᲣᲚᲘ', 'Հայերեն', 'ᚠᛇᚻ', 'ᏣᎳᎩ', 'ꮳꮃꭹ', '𐐔𐐯𐑅', 'ᠮᠣᠩᠭᠣᠯ', 'ትግርኛ', 'ߒߞߏ',
                 'ⴰⵎⴰⵣⵉⵖ', 'ᐃᓄᒃᑎᑐᑦ', '𓂀𓃭', '𒀭', 'ꓡꓲ', '𑀩𑁆𑀭𑀸𑀳𑁆𑀫𑀻', 'ܐܪܡܝܐ', 'ދިވެހި']
CJK_TEXT = ['我想在apple工作', '日本語のテキスト', '中文，标点。', '漢字かなカナ', '東京タワー', 'がぎぐげご', 'パピプペポ',
            'か\u3099', 'ｶﾞｷﾞ', 'ｱｲｳｴｵ', '㐀㐁', '𠀀𠀁', '𪜀', '𫝀', '𫠠𫠡', '𫡀', '𬺰', '豈更', '丽丸', '〇',
            '（注）', '「引用」', '『書名』', '【重要】', '・', 'ー', '〜', '々', '〃', '〆', '〶']
HANGUL = ['한국어 문장입니다', '안녕하세요', '대한민국', '\u1100\u1161\u11a8', '\u1112\u1161\u11ab',
          'ㄱㄴㄷㅏㅑ', 'ﾡﾢ', '\u115f\u1160', 'ᄀᆞ', '힣', '가각']
EMOJI = ['🚀', '😀😃😄', '😶\u200d🌫️', '👨\u200d👩\u200d👧\u200d👦', '🏳️\u200d🌈', '🏴\u200d☠️', '👍🏽', '👋🏿',
         '🧑🏾\u200d🚀', '🦙', '✅', '❤️', '❤\ufe0e', '☺️', '🇫🇷', '🇯🇵🇺🇸', '🇦', '1️⃣', '#️⃣', '*️⃣', '0\u20e3',
         '9\ufe0f\u20e3', '🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f', '©️', '™️', '🔟',
         '👩\u200d❤️\u200d💋\u200d👨', '🫠', '🫨', '🪿', '🏻', '🏿', '\U0001F3FB\U0001F3FC']
CONTROLS = ['\x00', '\x01', '\x07', '\x08', '\x1b[31m', '\x1c', '\x1f', '\x7f', '\x80', '\x9f', '\u00ad', '\u200b',
            '\u200c', '\u200d', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2060',
            '\u2061', '\u2066', '\u2067', '\u2068', '\u2069', '\ufeff', '\ufff9', '\ufffb', '\ufffc', '\ufffd',
            '\u061c', '\u180e', '\u034f', '\U000e0001', '\U000e0020', '\ue000', '\uf8ff', '\U000f0000',
            '\U0010fffd', '\ufe0f', '\ufe0e', '\U000e0100', '\u2028', '\u2029', '\u0600', '\u06dd', '\u070f',
            '\U000110bd', '\U0001bca0']
WHITESPACE = ['\t', '\n', '\x0b', '\x0c', '\r', ' ', '\x85', '\xa0', '\u1680', '\u2000', '\u2001', '\u2002',
              '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a', '\u2028', '\u2029',
              '\u202f', '\u205f', '\u3000', '\r\n', '  ', '\n\n']
ASCII_PUNCT = [chr(c) for c in list(range(0x21, 0x30)) + list(range(0x3A, 0x41)) + list(range(0x5B, 0x61)) +
               list(range(0x7B, 0x7F))]
UNI_PUNCT = (rng_range(0xA1, 0xBF) + [0xD7, 0xF7] + rng_range(0x2010, 0x2027) + rng_range(0x2030, 0x205E) +
             rng_range(0x2E00, 0x2E5D) + rng_range(0x3001, 0x3003) + rng_range(0x3008, 0x3011) +
             rng_range(0x3014, 0x301F) + rng_range(0xFE10, 0xFE19) + rng_range(0xFE30, 0xFE6B) +
             rng_range(0xFF01, 0xFF0F) + rng_range(0xFF1A, 0xFF20) + rng_range(0xFF3B, 0xFF40) +
             rng_range(0xFF5B, 0xFF65) + [0x55A, 0x55F, 0x589, 0x58A, 0x5BE, 0x5C0, 0x5C3, 0x5C6, 0x5F3, 0x5F4,
                                          0x60C, 0x60D, 0x61B, 0x61F, 0x66A, 0x66B, 0x66C, 0x66D, 0x6D4, 0x964,
                                          0x965, 0x970, 0xE4F, 0xE5A, 0xE5B, 0xF04, 0xF14, 0x104A, 0x104B,
                                          0x10FB, 0x1361, 0x1368, 0x166E, 0x17D4, 0x17D6, 0x1800, 0x180A,
                                          0x1B5A, 0x1B60, 0xA4FE, 0xA4FF, 0xA60D, 0xA60F, 0xA673, 0xA67E,
                                          0x10100, 0x1039F, 0x12470, 0x16FE2, 0x1E95E])
SYMBOLS = (rng_range(0x20A0, 0x20C0) + rng_range(0x2100, 0x214F) + rng_range(0x2190, 0x21FF) +
           rng_range(0x2200, 0x22FF) + rng_range(0x2300, 0x23FF) + rng_range(0x2460, 0x24FF) +
           rng_range(0x2500, 0x25FF) + rng_range(0x2600, 0x26FF) + rng_range(0x2700, 0x27BF) +
           rng_range(0x2B00, 0x2BFF) + rng_range(0x2E80, 0x2EF3) + rng_range(0x2F00, 0x2FD5) +
           rng_range(0x2FF0, 0x2FFF) + rng_range(0x31C0, 0x31EF) + rng_range(0x3200, 0x32FF) +
           rng_range(0x3300, 0x33FF) + [0x2C2, 0x2C3, 0x2C4, 0x2C5, 0x2D2, 0x2D8, 0x2DA, 0x2DD, 0x384, 0x385,
                                        0x3F6, 0x482, 0x58D, 0x60E, 0x6DE, 0x6E9, 0x9F2, 0xBF3, 0xE3F, 0xF01,
                                        0x1FBD, 0x1FBF, 0x1FED, 0x1FEE, 0x309B, 0x309C, 0xFF04, 0xFF0B, 0xFF3E,
                                        0xFF40, 0xFFE0, 0xFFE1, 0xFFE5, 0xFFE8, 0xFFED, 0x1D100, 0x1D15E,
                                        0x1D400, 0x1D7CE, 0x1F000, 0x1F0A1, 0x1F100, 0x1F130, 0x1F170])
DIGITS = ['0123456789', '٠١٢٣٤٥٦٧٨٩', '۰۱۲۳۴۵۶۷۸۹', '०१२३४५६७८९', '০১২৩৪৫৬৭৮৯', '੦੧੨੩', '૦૧૨૩',
          '୦୧୨୩', '௦௧௨௩', '౦౧౨౩', '೦೧೨೩', '൦൧൨൩', '๐๑๒๓', '໐໑໒໓', '༠༡༢༣', '၀၁၂၃', '០១២៣', '᠐᠑᠒᠓',
          '０１２３４５６７８９', '𝟎𝟏𝟐𝟑', '𝟘𝟙𝟚', '¹²³⁴', '₀₁₂', '¼½¾⅓⅞', '①②③⑳', '⑴⑵', '⒈⒉', 'ⅠⅡⅢⅣⅫ',
          'ⅰⅱⅲ', 'ↀↁↂ', '〡〢〣', '𐄇𐄈', '𒐕', '߀߁߂', '᧐᧑', '꘠꘡', '𑁦𑁧', '3.14159', '1,000,000', '10e-5',
          '0x1F', '٣٫١٤', '2024年', '१२.५%']
CASE = ['İ', 'ı', 'ẞ', 'ß', 'ΣΑΣ', 'ǅ', 'ǈ', 'ǋ', 'ǲ', 'Ω', 'K', 'Å', 'ﬁ', 'ﬀ', 'Ⓐⓑ', 'ⅫⅬ', '𐐀𐐨', 'Ᏸ',
        'ᲐᲑᲒ', 'ǰ', 'ŉ', 'ΐ', 'ᾼ', 'ῼ', 'Ⱥ', 'Ȿ', 'ꞵ', 'Ꞵ', '𞤀𞤢', '𖹀', 'ꭰ', 'Ꭰ', 'ＡＢＣ', 'ａｂｃ', 'ⅎ', 'Ⅎ',
        'ϴ', 'ẞß', 'İSTANBUL', 'DİYARBAKIR']
SPECIAL = ['</s>', '<s>', '<unk>', '<|endoftext|>', '<|end|>', '<|user|>', '<|assistant|>', '<|system|>',
           '<|placeholder1|>', '[PAD32011]', '[CLS]', '[SEP]', '[UNK]', '[MASK]', '[PAD]', '[unused0]',
           '<s> </s>', '</s></s>', '<|end|>\n', ' </s> ', '<|user|>  hi', 'x</s>y', '<|im_start|>',
           '<|eot_id|>', '[cls]', '</S>', '< /s>']

POOLS = {
    'latin': LATIN_WORDS, 'greek': GREEK, 'cyrillic': CYRILLIC, 'arabic': ARABIC, 'hebrew': HEBREW,
    'devanagari': DEVANAGARI, 'bengali': BENGALI, 'tamil': TAMIL, 'indic': INDIC_OTHER, 'sea': SEA,
    'other': OTHER_SCRIPTS, 'cjk': CJK_TEXT, 'hangul': HANGUL, 'emoji': EMOJI, 'controls': CONTROLS,
    'space': WHITESPACE, 'ascii_punct': ASCII_PUNCT, 'digits': DIGITS, 'case': CASE, 'special': SPECIAL,
    'english': ['Hello', 'world', 'The quick brown fox', 'tokenizer', 'unaffable', "don't", 'e-mail',
                'U.S.A.', 'https://example.com/a?b=c', 'foo_bar', 'CamelCase', 'x86_64', 'C++', 'a.b.c'],
}

# Code point ranges for random single characters: every ideograph block
# (including the U+2B820..2B91F stretch where BERT implementations differ),
# kana and Hangul, the letters and marks of the scripts above.
RANGES = {
    'cjk': [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
            (0x2B820, 0x2B91F), (0x2B920, 0x2CEAF), (0x2CEB0, 0x2EBE0), (0x30000, 0x3134A), (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF65, 0xFF9F), (0x3000, 0x303F),
            (0xFF00, 0xFF64)],
    'hangul': [(0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF),
               (0xFFA0, 0xFFDC)],
    'latin': [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF),
              (0xAB30, 0xAB6F), (0xFB00, 0xFB06)],
    'greek_cyr': [(0x370, 0x3FF), (0x1F00, 0x1FFF), (0x400, 0x52F), (0x1C80, 0x1C88), (0xA640, 0xA69F)],
    'rtl': [(0x5B0, 0x5F4), (0xFB1D, 0xFB4F), (0x600, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF), (0xFB50, 0xFDFF),
            (0xFE70, 0xFEFC), (0x700, 0x74F), (0x780, 0x7B1)],
    'indic': [(0x900, 0x97F), (0x980, 0x9FF), (0xA00, 0xA7F), (0xA80, 0xAFF), (0xB00, 0xB7F), (0xB80, 0xBFF),
              (0xC00, 0xC7F), (0xC80, 0xCFF), (0xD00, 0xD7F), (0xD80, 0xDFF), (0xF00, 0xFFF), (0x11000, 0x1107F),
              (0xA8E0, 0xA8FF)],
    'sea': [(0xE00, 0xE7F), (0xE80, 0xEFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1A20, 0x1AAF),
            (0x1B00, 0x1B7F), (0xA980, 0xA9DF)],
    'marks': [(0x300, 0x36F), (0x483, 0x489), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
              (0xFE00, 0xFE0F), (0xFE20, 0xFE2F), (0xE0100, 0xE01EF), (0x1D165, 0x1D169), (0x1D16D, 0x1D172)],
    'emoji': [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
              (0x1FA70, 0x1FAFF), (0x2600, 0x27BF), (0x1F1E6, 0x1F1FF), (0x1F3FB, 0x1F3FF)],
    'symbols': [(0x20A0, 0x20C0), (0x2100, 0x2BFF), (0x3200, 0x33FF), (0x1D400, 0x1D7FF), (0x1F100, 0x1F1FF)],
    'format': [(0x0, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F),
               (0xFFF0, 0xFFFF), (0xE0000, 0xE007F), (0xE000, 0xE00F)],
}


def rand_cp(rng, ranges):
    lo, hi = rng.choice(ranges)
    return rng.randint(lo, hi)


def rand_any_cp(rng):
    while True:
        c = rng.randint(0x20, 0x10FFFF) if rng.random() < 0.5 else rng.randint(0x80, 0x2FFFF)
        if not 0xD800 <= c <= 0xDFFF:
            return c


def zalgo(rng, base):
    out = base
    for _ in range(rng.randint(2, 25)):
        out += chr(rng.choice(COMBINING + ENCLOSING))
    return out


def decomposed_word(rng):
    letters = 'aeiouncyszAEIOUNCYSZ'
    w = ''
    for _ in range(rng.randint(1, 8)):
        w += rng.choice(letters)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            w += chr(rng.choice(rng_range(0x300, 0x36F)))
    return w


def keycap(rng):
    base = rng.choice('0123456789#*')
    return base + rng.choice(['\ufe0f\u20e3', '\u20e3', '\ufe0f', '\ufe0e\u20e3'])


def flag(rng):
    return chr(rng.randint(0x1F1E6, 0x1F1FF)) + chr(rng.randint(0x1F1E6, 0x1F1FF))


def skin(rng):
    return chr(rng.choice([0x1F44B, 0x1F44D, 0x1F466, 0x1F9D1, 0x270B, 0x1F64F])) + chr(rng.randint(0x1F3FB, 0x1F3FF))


def zwj_seq(rng):
    parts = [chr(rand_cp(rng, RANGES['emoji'])) for _ in range(rng.randint(2, 4))]
    return '\u200d'.join(p + ('\ufe0f' if rng.random() < 0.3 else '') for p in parts)


def one_kind(rng, kind):
    """A string of one class."""
    if kind == 'zalgo':
        return ' '.join(zalgo(rng, rng.choice('aeHZoxI0.!한क')) for _ in range(rng.randint(1, 4)))
    if kind == 'decomposed':
        return ' '.join(decomposed_word(rng) for _ in range(rng.randint(1, 5)))
    if kind == 'precomposed':
        return ''.join(chr(rng.choice(LATIN_PRE)) for _ in range(rng.randint(1, 12)))
    if kind == 'keycap':
        return ' '.join(keycap(rng) for _ in range(rng.randint(1, 4)))
    if kind == 'flag':
        return ''.join(flag(rng) for _ in range(rng.randint(1, 3)))
    if kind == 'skin':
        return ''.join(skin(rng) for _ in range(rng.randint(1, 3)))
    if kind == 'zwj':
        return zwj_seq(rng)
    if kind == 'punct':
        return ''.join(chr(rng.choice(UNI_PUNCT)) if rng.random() < 0.6 else rng.choice(ASCII_PUNCT)
                       for _ in range(rng.randint(1, 6)))
    if kind == 'symbols':
        return ''.join(chr(rng.choice(SYMBOLS)) for _ in range(rng.randint(1, 6)))
    if kind in RANGES:
        n = rng.randint(1, 10)
        s = ''.join(chr(rand_cp(rng, RANGES[kind])) for _ in range(n))
        return s if kind != 'format' else 'a' + s + 'b'
    if kind == 'random':
        return ''.join(chr(rand_any_cp(rng)) for _ in range(rng.randint(1, 8)))
    return rng.choice(POOLS[kind])


KINDS = sorted(POOLS) + sorted(RANGES) + ['zalgo', 'decomposed', 'precomposed', 'keycap', 'flag', 'skin', 'zwj',
                                         'punct', 'symbols', 'random']


def gen(rng):
    out = []
    # every pool entry alone, and with text around it
    for k in sorted(POOLS):
        for s in POOLS[k]:
            out.append(s)
            out.append('x ' + s + ' y')
            out.append('A' + s + 'b')
    for s in WHITESPACE + CONTROLS:
        out.append('a' + s + 'b')
    for c in UNI_PUNCT + SYMBOLS[::7]:
        out.append('ab' + chr(c) + 'cd')
    # each kind on its own
    for k in KINDS:
        for _ in range(40):
            out.append(one_kind(rng, k))
    # mixtures
    for _ in range(1400):
        parts = []
        for _ in range(rng.randint(2, 8)):
            parts.append(one_kind(rng, rng.choice(KINDS)))
            parts.append(rng.choice(['', ' ', ' ', '\n', '  ', rng.choice(WHITESPACE)]))
        out.append(''.join(parts))
    # long words (Hugging Face's WordPiece gives up past 100 characters)
    for n in [99, 100, 101, 150, 300]:
        out.append('a' * n)
        out.append('abc' * (n // 3) + ' end')
        out.append('é' * n)
        out.append('x' + '\u0301' * n)
    out.append('supercalifragilisticexpialidocious' * 4)
    out = [s.encode('utf-8') for s in out]
    # invalid UTF-8: lone and truncated sequences, overlong forms, surrogates
    bad = [b'\xff', b'\xfe', b'\x80', b'\xbf', b'\xc3', b'\xc3(', b'\xe2\x82', b'\xe2\x82(', b'\xf0\x9f\x98',
           b'\xc0\x80', b'\xc0\xaf', b'\xc1\x81', b'\xc1\xbf', b'\xe0\x80\xaf', b'\xe0\x81\x81', b'\xed\xa0\x80',
           b'\xed\xbf\xbf', b'\xf0\x80\x80\xaf', b'\xf0\x80\x81\x81', b'\xf8\x88\x80\x80\x80', b'\xfc\x80',
           b'\xc2\xa0', b'\xe3\x80\x80']
    for b in bad:
        out += [b, b'ok ' + b + b' end', b + b'abc', b'abc' + b, b'\xc3\xa9' + b]
    for _ in range(60):
        out.append(b''.join(rng.choice(bad) if rng.random() < 0.4 else one_kind(rng, rng.choice(KINDS)).encode()
                            for _ in range(rng.randint(1, 6))))
    return [s for s in out if s]


def main():
    rng = random.Random(20261207)
    strings = gen(rng)
    with open(sys.argv[1], 'w') as f:
        for s in strings:
            f.write(base64.b64encode(s).decode() + '\n')
    print(len(strings))


main()
