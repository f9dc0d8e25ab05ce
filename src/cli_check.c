/* src/cli_check.c - placeholder while being written; replaced before landing. */
#include <stdio.h>
#include "cli.h"
int cmd_check(struct cli *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "custodyctl: cmd_check is being written\n"); return EXIT_RUNTIME; }
