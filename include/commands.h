/*
 * commands.h - the subcommands of smartrelay.
 *
 * Each takes the arguments after the command name (argv[0] is the command
 * name itself, as getopt_long expects) and returns the process exit status:
 * 0 success, 1 runtime error, 2 bad usage. Errors go to stderr as one line.
 */
#ifndef SMARTRELAY_COMMANDS_H
#define SMARTRELAY_COMMANDS_H

int cmd_init(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_requeue(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_purge(int argc, char **argv);
int cmd_copy(int argc, char **argv);

#endif
