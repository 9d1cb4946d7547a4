/* main.c - inferkv-cli: the engine's command-line front end.  Dispatches to
 * one function per subcommand (cli.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "infer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: inferkv-cli COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  info MODEL                       architecture, hyper-parameters, tensors, size\n"
            "  generate -m MODEL [-p PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P]\n"
            "           [--min-p P] [--repeat-penalty R] [--seed S] [--threads T] [--ctx N]\n"
            "                                   prompt text then generated text on stdout\n"
            "  bench -m MODEL [--pp N] [--tg N] [--seqs N] [--threads T] [--reps R] [--json]\n"
            "                                   prompt, decode and batched-decode tokens/s\n"
            "  bench --embed -m MODEL [--batch N]... [--tokens N] [--threads T] [--reps R] [--json]\n"
            "                                   an encoder's embeddings/s\n"
            "  embed -m MODEL [TEXT... | -f FILE] [--pooling mean|cls|last] [--no-normalize]\n"
            "        [--long refuse|chunk] [--threads T] [--ctx N] [--batch N]\n"
            "                                   one line of floats per input (bert, nomic-bert)\n"
            "  tokenize -m MODEL [-f FILE | TEXT] [--add-special] [--parse-special]\n"
            "                                   token ids of the text\n"
            "  detokenize -m MODEL ID...        text of the ids\n"
            "  chat-format -m MODEL [--no-think] [--no-assistant] [-f FILE | JSON]\n"
            "                                   a JSON list of messages rendered with the model's template\n"
            "  pull OWNER/REPO[:QUANT|:FILE.gguf] [--dir DIR] [--sha256 HEX] [--endpoint URL]\n"
            "       [--token TOKEN] [--revision REV] [--quiet]\n"
            "                                   download a GGUF from a Hugging Face-style hub, verified\n"
            "\n"
            "See docs/cli.md.  Kernels on this machine: %s\n",
            infer_simd_name());
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"info", cli_info},         {"generate", cli_generate},     {"bench", cli_bench},
        {"tokenize", cli_tokenize}, {"detokenize", cli_detokenize}, {"chat-format", cli_chat_format},
        {"embed", cli_embed},       {"pull", cli_pull},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
