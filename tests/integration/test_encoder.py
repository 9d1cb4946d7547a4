#!/usr/bin/env python3
"""test_encoder.py - libinfer's encoder models (bert, nomic-bert) against an
independent float64 forward pass.

Models are written by build/gguf-gen (tiny-bert, tiny-nomic-bert and
variants: GQA, MiniLM's width; F32, F16, Q8_0; the real WordPiece vocabulary
of ../shared when present).  This file reads them back with its own GGUF reader
and runs the encoder in numpy float64 from the tensors alone (nothing is
shared with the C engine but the file), with llama.cpp's semantics: token
type 0 and learned positions (bert) or rotary positions (nomic-bert, neox
pairs), post-LayerNorm blocks, GELU as ggml computes it (tanh form evaluated
on the input rounded to fp16, result rounded to fp16), SwiGLU for nomic-bert,
bidirectional attention, mean / CLS / last pooling, L2 normalisation.

Checked through `inferkv-cli embed` (token ids from `inferkv-cli tokenize`):
  - vectors within 1e-4 of the reference for F32, 1e-3 for F16, cosine >=
    0.999 for Q8_0, for every pooling, normalised or not;
  - batched equals unbatched, bit for bit;
  - a long input chunked: the token-weighted mean of the windows' pooled
    vectors, each window [CLS] + its share + [SEP], as the reference computes;
    refused with a clear message unless chunking is asked for;
  - hostile files refused with a message naming the problem: a missing
    tensor, wrong shapes, bad or missing metadata;
  - a decoder model refused by `embed`.
Prints "N passed, N failed, N skipped"; skips (clearly) without numpy.
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("INFERKV_SHARED", os.path.join(ROOT, "..", "shared"))
GEN = os.path.join(BUILD, "gguf-gen")
CLI = os.path.join(BUILD, "inferkv-cli")
BGE_VOCAB = os.path.join(SHARED, "models", "ggml-org_llama.cpp", "ggml-vocab-bert-bge.gguf")

passed = failed = skipped = 0


def ok():
    global passed
    passed += 1


def bad(msg):
    global failed
    failed += 1
    print("  FAIL: " + msg, flush=True)


def skip(msg):
    global skipped
    skipped += 1
    print("  SKIP: " + msg, flush=True)


def finish():
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


try:
    import numpy as np
except ImportError:
    skip("numpy is not installed (Debian: apt-get install python3-numpy): the float64 reference needs it")
    finish()

# ---- a GGUF reader of our own ----------------------------------------------------

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Gguf:
    """Metadata (dict) and tensors of a GGUF v3 file; remembers where each
    metadata value and tensor name lies, so tests can corrupt them in place."""

    def __init__(self, path):
        self.buf = open(path, "rb").read()
        b = self.buf
        if b[:4] != b"GGUF":
            raise ValueError("not a GGUF file")
        self.version, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
        off = 24
        self.kv, self.kv_off = {}, {}
        for _ in range(n_kv):
            key, off = self._str(off)
            t, = struct.unpack_from("<I", b, off)
            off += 4
            self.kv_off[key] = off
            self.kv[key], off = self._val(t, off)
        self.tensors, self.name_off = {}, {}
        infos = []
        for _ in range(n_t):
            start = off
            name, off = self._str(off)
            self.name_off[name] = start + 8
            nd, = struct.unpack_from("<I", b, off)
            ne = struct.unpack_from("<%dQ" % nd, b, off + 4)
            t, o = struct.unpack_from("<IQ", b, off + 4 + 8 * nd)
            off += 4 + 8 * nd + 12
            infos.append((name, ne, t, o))
        align = self.kv.get("general.alignment", 32)
        base = (off + align - 1) // align * align
        for name, ne, t, o in infos:
            self.tensors[name] = (ne, t, base + o)

    def _str(self, off):
        n, = struct.unpack_from("<Q", self.buf, off)
        return self.buf[off + 8: off + 8 + n].decode("utf-8"), off + 8 + n

    def _val(self, t, off):
        if t == 8:
            return self._str(off)
        if t == 9:
            at, n = struct.unpack_from("<IQ", self.buf, off)
            off += 12
            out = []
            for _ in range(n):
                v, off = self._val(at, off)
                out.append(v)
            return out, off
        v, = struct.unpack_from(SCALAR[t], self.buf, off)
        return v, off + struct.calcsize(SCALAR[t])

    def tensor(self, name):
        """float64 array of shape (ne1, ne0) (or (ne0,) for 1-D)."""
        ne, t, off = self.tensors[name]
        n = 1
        for d in ne:
            n *= d
        b = self.buf
        if t == 0:
            a = np.frombuffer(b, dtype="<f4", count=n, offset=off).astype(np.float64)
        elif t == 1:
            a = np.frombuffer(b, dtype="<f2", count=n, offset=off).astype(np.float64)
        elif t == 8:  # Q8_0: blocks of fp16 scale + 32 int8
            nb = n // 32
            raw = np.frombuffer(b, dtype=np.uint8, count=nb * 34, offset=off).reshape(nb, 34)
            d = raw[:, :2].copy().view("<f2").astype(np.float64)
            q = raw[:, 2:].copy().view(np.int8).astype(np.float64)
            a = (q * d).reshape(n)
        else:
            raise ValueError("tensor %s: type %d not handled by the test" % (name, t))
        return a.reshape(ne[::-1]) if len(ne) > 1 else a


# ---- the float64 reference -------------------------------------------------------------


def layernorm(x, w, b, eps):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu_ggml(x):
    """ggml's f32 GELU: 0 below -10, identity above 10, else the tanh form
    of the input rounded to fp16, rounded to fp16."""
    h = x.astype(np.float16).astype(np.float64)
    g = 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * h * (1.0 + 0.044715 * h * h)))
    g = g.astype(np.float16).astype(np.float64)
    return np.where(x <= -10.0, 0.0, np.where(x >= 10.0, x, g))


class Reference:
    def __init__(self, path):
        g = Gguf(path)
        self.g = g
        a = g.kv["general.architecture"]
        self.arch = a
        k = lambda s, d=None: g.kv.get(a + "." + s, d)
        self.E = k("embedding_length")
        self.L = k("block_count")
        self.H = k("attention.head_count")
        self.Hkv = k("attention.head_count_kv", self.H)
        self.hd = self.E // self.H
        self.eps = k("attention.layer_norm_epsilon")
        self.pool = {1: "mean", 2: "cls", 3: "last"}[k("pooling_type", 1)]
        self.base = k("rope.freq_base", 10000.0)
        self.ctx = k("context_length")
        t = g.tensor
        self.tok = t("token_embd.weight")
        self.type0 = t("token_types.weight")[0] if "token_types.weight" in g.tensors else 0.0
        self.pos = t("position_embd.weight") if a == "bert" else None
        self.tn = (t("token_embd_norm.weight"), t("token_embd_norm.bias"))
        opt = lambda n: t(n) if n in g.tensors else None
        self.layers = []
        kvd = self.Hkv * self.hd
        for i in range(self.L):
            p = "blk.%d." % i
            d = {}
            if a == "nomic-bert":
                qkv = t(p + "attn_qkv.weight")
                d["wq"], d["wk"], d["wv"] = qkv[: self.E], qkv[self.E: self.E + kvd], qkv[self.E + kvd:]
                d["bq"] = d["bk"] = d["bv"] = None
                d["wg"] = t(p + "ffn_gate.weight")
            else:
                for x in "qkv":
                    d["w" + x] = t(p + "attn_%s.weight" % x)
                    d["b" + x] = t(p + "attn_%s.bias" % x)
            d["wo"], d["bo"] = t(p + "attn_output.weight"), opt(p + "attn_output.bias")
            d["n1"] = (t(p + "attn_output_norm.weight"), t(p + "attn_output_norm.bias"))
            d["wu"], d["bu"] = t(p + "ffn_up.weight"), opt(p + "ffn_up.bias")
            d["wd"], d["bd"] = t(p + "ffn_down.weight"), opt(p + "ffn_down.bias")
            d["n2"] = (t(p + "layer_output_norm.weight"), t(p + "layer_output_norm.bias"))
            self.layers.append(d)

    def rope(self, x, n):
        """neox pairs (i, i + hd/2) of every head, positions 0..n-1."""
        half = self.hd // 2
        inv = self.base ** (-2.0 * np.arange(half) / self.hd)
        ang = np.arange(n)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x = x.reshape(n, -1, self.hd)
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1).reshape(n, -1)

    def hidden(self, ids):
        n = len(ids)
        x = self.tok[ids] + self.type0
        if self.pos is not None:
            x = x + self.pos[:n]
        x = layernorm(x, *self.tn, self.eps)
        rep = self.H // self.Hkv
        lin = lambda x, w, b: x @ w.T + (b if b is not None else 0.0)
        for d in self.layers:
            q, k, v = lin(x, d["wq"], d["bq"]), lin(x, d["wk"], d["bk"]), lin(x, d["wv"], d["bv"])
            if self.arch == "nomic-bert":
                q, k = self.rope(q, n), self.rope(k, n)
            att = np.zeros((n, self.E))
            for h in range(self.H):
                g = h // rep
                qh = q[:, h * self.hd: (h + 1) * self.hd]
                kh, vh = k[:, g * self.hd: (g + 1) * self.hd], v[:, g * self.hd: (g + 1) * self.hd]
                s = qh @ kh.T / math.sqrt(self.hd)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, h * self.hd: (h + 1) * self.hd] = (s / s.sum(axis=1, keepdims=True)) @ vh
            x = layernorm(x + lin(att, d["wo"], d["bo"]), *d["n1"], self.eps)
            if self.arch == "nomic-bert":
                gt = x @ d["wg"].T
                hmid = gt / (1.0 + np.exp(-gt)) * (x @ d["wu"].T)
            else:
                hmid = gelu_ggml(lin(x, d["wu"], d["bu"]))
            x = layernorm(x + lin(hmid, d["wd"], d["bd"]), *d["n2"], self.eps)
        return x

    def pooled(self, ids, pool):
        x = self.hidden(ids)
        return x.mean(axis=0) if pool == "mean" else x[0] if pool == "cls" else x[-1]

    def embed(self, ids, pool=None, normalize=True, ctx=None, cls=None, sep=None):
        pool = pool or self.pool
        ctx = ctx or self.ctx
        if len(ids) <= ctx:
            v = self.pooled(ids, pool)
        else:
            wrap = cls is not None and ids[0] == cls and ids[-1] == sep
            body, width = (ids[1:-1], ctx - 2) if wrap else (ids, ctx)
            acc, wsum = 0.0, 0
            for i in range(0, len(body), width):
                win = body[i: i + width]
                if wrap:
                    win = [cls] + list(win) + [sep]
                acc = acc + len(win) * self.pooled(list(win), pool)
                wsum += len(win)
            v = acc / wsum
        if normalize:
            v = v / np.linalg.norm(v)
        return v


# ---- the engine, through inferkv-cli ------------------------------------------------------


def run(args, timeout=300):
    p = subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def tokenize(model, text):
    rc, out, err = run(["tokenize", "-m", model, "--add-special", text])
    if rc:
        raise RuntimeError("tokenize failed: " + err)
    return [int(t) for t in out.split()]


def embed(model, texts, *opts):
    rc, out, err = run(["embed", "-m", model] + list(opts) + list(texts))
    if rc:
        raise RuntimeError("embed failed: " + err.strip())
    return out, [np.array([float(x) for x in line.split()]) for line in out.splitlines()]


TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog.",
    "a",
    "embeddings, pooled: mean, cls or last! (and normalised?)",
    "",
]
LONG = " ".join("word%d is here and there" % (i % 7) for i in range(60))


def gen(path, *args):
    p = subprocess.run([GEN, "-q", "-o", path] + list(args), stderr=subprocess.PIPE)
    if p.returncode:
        raise RuntimeError("gguf-gen failed: " + p.stderr.decode())


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def close(name, got, want, typ):
    if got.shape != want.shape:
        bad("%s: %s vs %s values" % (name, got.shape, want.shape))
        return False
    if typ == "q8_0":
        c = cosine(got, want)
        if c >= 0.999:
            ok()
            return True
        bad("%s: cosine %.6f < 0.999" % (name, c))
        return False
    tol = 1e-4 if typ == "f32" else 1e-3
    err = float(np.max(np.abs(got - want)))
    if err <= tol:
        ok()
        return True
    bad("%s: max error %.3g > %g" % (name, err, tol))
    return False


def check_model(tmp, label, gen_args, types=("f32", "f16", "q8_0"), poolings=("mean", "cls", "last")):
    for typ in types:
        path = os.path.join(tmp, "%s-%s.gguf" % (label, typ))
        try:
            gen(path, "--type", typ, *gen_args)
        except RuntimeError as e:
            bad("%s %s: %s" % (label, typ, e))
            continue
        ref = Reference(path)
        ids = [tokenize(path, t) for t in TEXTS]
        worst, worst_cos = 0.0, 1.0
        for pool in poolings:
            for norm in (True, False):
                opts = ["--pooling", pool] + ([] if norm else ["--no-normalize"])
                try:
                    out, got = embed(path, TEXTS, *opts)
                except RuntimeError as e:
                    bad("%s %s %s: %s" % (label, typ, pool, e))
                    continue
                for i, t in enumerate(TEXTS):
                    want = ref.embed(ids[i], pool, norm)
                    if i < len(got):
                        close("%s %s pool=%s norm=%d text %d" % (label, typ, pool, norm, i), got[i], want, typ)
                        worst = max(worst, float(np.max(np.abs(got[i] - want))))
                        worst_cos = min(worst_cos, cosine(got[i], want))
                if pool == poolings[0] and norm:
                    # batched (all texts in one pass) equals one text per call, bit for bit
                    try:
                        one, _ = embed(path, TEXTS, *(opts + ["--batch", "1"]))
                        if one == out:
                            ok()
                        else:
                            bad("%s %s: batched and unbatched outputs differ" % (label, typ))
                    except RuntimeError as e:
                        bad("%s %s batch 1: %s" % (label, typ, e))
        print("  %s %s: worst |engine - float64| = %.3g, worst 1 - cosine %.2g" % (label, typ, worst, 1 - worst_cos),
              flush=True)
    return os.path.join(tmp, "%s-%s.gguf" % (label, types[0]))


def check_long(path, label):
    ref = Reference(path)
    ids = tokenize(path, LONG)
    cls, sep = ids[0], ids[-1]
    for ctx in (None, 16):
        opts = ["--long", "chunk"] + (["--ctx", str(ctx)] if ctx else [])
        if ctx is None and len(ids) <= ref.ctx:
            continue
        for pool in ("mean", "cls"):
            try:
                _, got = embed(path, [LONG, "short one"], *(opts + ["--pooling", pool]))
            except RuntimeError as e:
                bad("%s long ctx=%s: %s" % (label, ctx, e))
                continue
            want = ref.embed(ids, pool, True, ctx, cls, sep)
            close("%s long input (%d tokens) chunked at ctx %s, pool %s" % (label, len(ids), ctx or ref.ctx, pool),
                  got[0], want, "f32")
            close("%s short input beside a chunked one" % label, got[1],
                  ref.embed(tokenize(path, "short one"), pool, True), "f32")
    # refused unless asked
    rc, out, err = run(["embed", "-m", path, "--ctx", "16", LONG])
    if rc == 1 and "exceeds the context" in err and "refused" in err and out == "":
        ok()
    else:
        bad("%s: a long input was not refused clearly (rc %d, stderr %r)" % (label, rc, err.strip()))


def corrupt(src, dst, edit):
    g = Gguf(src)
    b = bytearray(g.buf)
    edit(g, b)
    open(dst, "wb").write(b)


def set_u32(key, v):
    def f(g, b):
        struct.pack_into("<I", b, g.kv_off[key], v)
    return f


def rename(old, new, where="tensor"):
    assert len(old) == len(new)

    def f(g, b):
        if where == "tensor":
            off = g.name_off[old]
        else:  # a metadata key: its text precedes the type tag
            off = g.kv_off[old] - 4 - len(old)
        assert bytes(b[off: off + len(old)]) == old.encode()
        b[off: off + len(new)] = new.encode()
    return f


def check_hostile(tmp, bert, nomic):
    cases = [
        (bert, rename("blk.1.ffn_up.weight", "blk.1.ffn_uX.weight"), "missing tensor blk.1.ffn_up.weight"),
        (bert, rename("token_embd_norm.bias", "token_embd_norm.biaX"), "missing tensor token_embd_norm.bias"),
        (bert, set_u32("bert.context_length", 100), "tensor position_embd.weight has shape"),
        (bert, set_u32("bert.feed_forward_length", 96), "has shape"),
        (bert, set_u32("bert.pooling_type", 7), "is not a pooling type"),
        (bert, set_u32("bert.pooling_type", 4), "rank"),
        (bert, set_u32("bert.attention.head_count", 5), "not a multiple of the head count"),
        (bert, set_u32("bert.block_count", 0), "out of range"),
        (bert, rename("bert.attention.layer_norm_epsilon", "bert.attention.layer_norm_epsiloX", "key"),
         "missing metadata key bert.attention.layer_norm_epsilon"),
        (bert, lambda g, b: b.__setitem__(g.kv_off["bert.attention.causal"], 1), "causal"),
        (nomic, rename("nomic-bert.pooling_type", "nomic-bert.pooling_typX", "key"),
         "missing metadata key nomic-bert.pooling_type"),
        (nomic, rename("blk.0.attn_qkv.weight", "blk.0.attn_qkX.weight"), "missing tensor blk.0.attn_qkv.weight"),
        (nomic, set_u32("tokenizer.ggml.token_type_count", 3), "token_types.weight"),
    ]
    for i, (src, edit, want) in enumerate(cases):
        dst = os.path.join(tmp, "hostile%d.gguf" % i)
        corrupt(src, dst, edit)
        rc, out, err = run(["embed", "-m", dst, "hello"])
        if rc == 1 and want in err and out == "":
            ok()
        else:
            bad("hostile case %d: want exit 1 and %r, got rc %d, stderr %r" % (i, want, rc, err.strip()))


def main():
    for p in (GEN, CLI):
        if not os.access(p, os.X_OK):
            bad("%s is not built" % p)
            finish()
    with tempfile.TemporaryDirectory() as tmp:
        bert = check_model(tmp, "tiny-bert", ["--preset", "tiny-bert"])
        check_model(tmp, "bert-gqa", ["--arch", "bert", "--layers", "3", "--embd", "128", "--heads", "4",
                                      "--kv-heads", "2", "--ffn", "320", "--ctx", "64", "--pooling", "cls",
                                      "--vocab-size", "600"], types=("f32",))
        # MiniLM's width and heads (2 of its 6 layers): realistic rounding for F16 and Q8_0
        check_model(tmp, "minilm-2l", ["--preset", "minilm-l6", "--layers", "2", "--vocab-size", "1000"],
                    types=("f16", "q8_0"), poolings=("mean", "cls"))
        nomic = check_model(tmp, "tiny-nomic-bert", ["--preset", "tiny-nomic-bert"])
        if os.path.exists(BGE_VOCAB):
            check_model(tmp, "bert-bge-vocab", ["--preset", "tiny-bert", "--vocab", BGE_VOCAB, "--seed", "3"],
                        types=("f16",), poolings=("mean",))
        else:
            skip("%s absent: the real WordPiece vocabulary is not exercised" % BGE_VOCAB)
        check_long(bert, "tiny-bert")
        check_long(nomic, "tiny-nomic-bert")
        check_hostile(tmp, bert, nomic)
        dec = os.path.join(tmp, "llama.gguf")
        gen(dec, "--preset", "tiny-llama")
        rc, out, err = run(["embed", "-m", dec, "hello"])
        if rc == 1 and "not an encoder" in err:
            ok()
        else:
            bad("embed on a decoder: rc %d, stderr %r" % (rc, err.strip()))
    finish()


if __name__ == "__main__":
    main()
