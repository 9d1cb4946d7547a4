// llamacpp_ids.cpp - llama.cpp's own tokenizer over a corpus of base64 lines:
// how the expected ids of tests/tokenizer/intl/ were made (never built by
// the project's Makefile; it needs a llama.cpp tree, see make_intl_vectors.sh).
//
//   llamacpp_ids VOCAB.gguf CORPUS.b64 OUT.ids PARSE_SPECIAL ADD_SPECIAL
//
// The vocab is loaded alone (vocab_only); each line is decoded and given to
// llama_tokenize, whose ids are written space-separated, one line per input
// line.  One process for the whole corpus: llama-tokenize takes one prompt a
// run, which makes thousands of strings slow.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

static std::string b64_decode(const std::string & in) {
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (char ch : in) {
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+') v = 62;
        else if (ch == '/') v = 63;
        else break;
        acc = (acc << 6) | (unsigned) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((char) ((acc >> bits) & 0xFF));
        }
    }
    return out;
}

static void no_log(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: llamacpp_ids VOCAB.gguf CORPUS.b64 OUT.ids PARSE_SPECIAL ADD_SPECIAL\n");
        return 2;
    }
    const bool parse = atoi(argv[4]) != 0, add = atoi(argv[5]) != 0;
    llama_log_set(no_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "llamacpp_ids: cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::ifstream in(argv[2]);
    std::ofstream out(argv[3]);
    std::vector<llama_token> ids(1 << 20);
    std::string line;
    while (std::getline(in, line)) {
        const std::string text = b64_decode(line);
        const int n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), add, parse);
        for (int i = 0; i < n; i++) out << (i ? " " : "") << ids[i];
        out << "\n";
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
