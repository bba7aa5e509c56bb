/*
 * replay.c - runs a fuzz target over the files named on the command line,
 * without libFuzzer, so that `make check` replays the committed corpus
 * (and every crash found and fixed) under the ordinary compilers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs larger than this are not corpus files. */
#define REPLAY_MAX (4 * 1024 * 1024)

int main(int argc, char **argv)
{
	unsigned char *buf;
	size_t len;
	FILE *f;
	int i;

	buf = malloc(REPLAY_MAX);
	if (buf == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		return 1;
	}
	for (i = 1; i < argc; i++) {
		f = fopen(argv[i], "rb");
		if (f == NULL) {
			perror(argv[i]);
			free(buf);
			return 1;
		}
		len = fread(buf, 1, REPLAY_MAX, f);
		if (ferror(f) || !feof(f)) {
			fprintf(stderr, "replay: %s: unreadable or too large\n",
				argv[i]);
			fclose(f);
			free(buf);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("replay: %d inputs\n", argc - 1);
	free(buf);
	return 0;
}
