/* src/cli_ops.c - placeholder while being written; replaced before landing. */
#include <stdio.h>
#include "cli.h"
int cmd_backup(struct cli *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "custodyctl: cmd_backup is being written\n"); return EXIT_RUNTIME; }
int cmd_compact(struct cli *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "custodyctl: cmd_compact is being written\n"); return EXIT_RUNTIME; }
int cmd_upgrade(struct cli *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "custodyctl: cmd_upgrade is being written\n"); return EXIT_RUNTIME; }
