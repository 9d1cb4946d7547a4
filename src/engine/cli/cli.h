/* cli.h - the subcommands of inferkv-cli, one function each, dispatched by
 * main.c.  Each takes argv with argv[0] = the subcommand name and returns
 * the process exit status (0 ok, 1 error, 2 usage). */
#ifndef INFERKV_CLI_H
#define INFERKV_CLI_H

int cli_info(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_tokenize(int argc, char **argv);     /* cli_tokenize.c */
int cli_detokenize(int argc, char **argv);   /* cli_tokenize.c */
int cli_chat_format(int argc, char **argv);  /* cli_tokenize.c */
int cli_embed(int argc, char **argv);        /* cli_embed.c */
int cli_bench_embed(int argc, char **argv);  /* cli_embed.c: bench --embed */
int cli_pull(int argc, char **argv);         /* cli_pull.c (hub side: cli_hub.c) */

#endif
