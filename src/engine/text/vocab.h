/* vocab.h - internal: building an infer_vocab from an open GGUF file.
 *
 * The model loader calls vocab_from_gguf on the model's own file, so a model
 * and its tokenizer are validated together; infer_vocab_load (infer.h) does
 * the same for vocab-only files.  The public tokenize/detokenize functions
 * live in infer.h. */
#ifndef INFER_VOCAB_H
#define INFER_VOCAB_H

#include "gguf/gguf.h"
#include "infer.h"

/* Reads tokenizer.ggml.* from g and builds the tokenizer it names.  The vocab
 * copies what it needs: it stays valid after gguf_close(g). */
int vocab_from_gguf(const gguf_file *g, infer_vocab **out, char *err, size_t errlen);

/* Whether a BOS should start a prompt (tokenizer.ggml.add_bos_token, or the
 * tokenizer kind's default). */
int vocab_add_bos(const infer_vocab *v);

/* Writes the vocab as tokenizer.ggml.* metadata (model, pre, tokens, scores,
 * token types, merges, special ids, flags) into w, so that vocab_from_gguf
 * reads back the same tokenizer.  Used by tools/tokjson2gguf. */
struct gguf_writer;
int vocab_to_gguf(const infer_vocab *v, struct gguf_writer *w, char *err, size_t errlen);

#endif
