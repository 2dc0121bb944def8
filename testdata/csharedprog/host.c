// host is a C program that loads a Go c-shared library (testdata/csharedprog/lib)
// with dlopen and lets the library's Go code storm one of its own functions
// while pthreads of this program call it and check every result.
//
//	host LIBRARY.so MILLISECONDS
//
// It prints "OK" and exits 0 when the library's storm and every C call
// went right.
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define WORKERS 2

static int (*call_victim)(int);
static atomic_int stop;

struct counts {
	long long calls, orig, repl, through, wrong;
	int bad_x, bad_got;
};

static void *worker(void *arg) {
	struct counts *c = arg;
	for (int i = 0; !atomic_load(&stop); i++) {
		int x = i & 1023;
		int got = call_victim(x);
		c->calls++;
		if (got == 2 * x + 1) {
			c->orig++;
		} else if (got == x + 5000) {
			c->repl++;
		} else if (got == 2 * x + 1 + 1000000) {
			c->through++;
		} else {
			if (c->wrong++ == 0) {
				c->bad_x = x;
				c->bad_got = got;
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: host LIBRARY.so MILLISECONDS\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0); // the Go side writes to the same fd
	void *h = dlopen(argv[1], RTLD_NOW);
	if (h == NULL) {
		printf("FAIL: dlopen: %s\n", dlerror());
		return 1;
	}
	int (*storm)(int) = (int (*)(int))dlsym(h, "Storm");
	call_victim = (int (*)(int))dlsym(h, "CallVictim");
	if (storm == NULL || call_victim == NULL) {
		printf("FAIL: dlsym: %s\n", dlerror());
		return 1;
	}
	pthread_t threads[WORKERS];
	struct counts counts[WORKERS] = {0};
	for (int i = 0; i < WORKERS; i++) {
		if (pthread_create(&threads[i], NULL, worker, &counts[i]) != 0) {
			printf("FAIL: pthread_create\n");
			return 1;
		}
	}
	int rc = storm(atoi(argv[2]));
	atomic_store(&stop, 1);
	struct counts sum = {0};
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(threads[i], NULL);
		sum.calls += counts[i].calls;
		sum.orig += counts[i].orig;
		sum.repl += counts[i].repl;
		sum.through += counts[i].through;
		if (counts[i].wrong && !sum.wrong) {
			sum.bad_x = counts[i].bad_x;
			sum.bad_got = counts[i].bad_got;
		}
		sum.wrong += counts[i].wrong;
	}
	printf("c: %d pthreads, %lld calls (original %lld, replacement %lld, through original %lld), wrong %lld\n",
	       WORKERS, sum.calls, sum.orig, sum.repl, sum.through, sum.wrong);
	if (sum.wrong) {
		printf("FAIL: victim(%d) = %d from C\n", sum.bad_x, sum.bad_got);
		return 1;
	}
	if (rc != 0 || sum.orig == 0 || sum.repl + sum.through == 0) {
		printf("FAIL: storm returned %d; C saw the original %lld times, a replacement %lld times\n", rc, sum.orig, sum.repl + sum.through);
		return 1;
	}
	printf("OK\n");
	return 0;
}
