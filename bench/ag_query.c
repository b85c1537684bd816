/* ag_query: prints the SQL text of one of asyncgate's prepared statements (lib/queries.c) by
 * name, so that make bench times the very statement the drainer runs (e.g. drain_claim). */
#include <stdio.h>
#include <string.h>

#include "queries.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fputs("usage: ag_query NAME   (a statement name from lib/queries.c)\n", stderr);
		return 2;
	}
	for (int i = 0; i < Q__COUNT; i++) {
		if (strcmp(queries[i].name, argv[1]) == 0) {
			printf("%s\n", queries[i].sql);
			return 0;
		}
	}
	fprintf(stderr, "ag_query: no statement named %s\n", argv[1]);
	return 1;
}
