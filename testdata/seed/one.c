// The seed's own case: `one` with exactly the seed's bytes (gcc -O0
// -fno-omit-frame-pointer, no endbr64), called in a loop by pthreads.
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include "seed.h"

// Six bytes of a sized symbol, then `one`: it lands at 16k+6 like the
// seed's 0x400b56, where no aligned quadword holds a patch at its entry.
__asm__(".text\n.p2align 4\n.globl sb_pad6\n.type sb_pad6,@function\n"
        "sb_pad6: ret\n int3\n int3\n int3\n int3\n int3\n.size sb_pad6,6\n");

// Where gcc defaults to -fcf-protection (which cgo's flag check will not
// let a package turn off), nocf_check keeps endbr64 out of `one`.
#ifdef __CET__
#define SEED_NOCF __attribute__((nocf_check))
#else
#define SEED_NOCF
#endif

SEED_NOCF int one(void) { return 42; }

// The same bytes at 16k+2: no aligned quadword inside its 11 bytes holds
// a patch at any boundary a relay site can undo. Refused.
__asm__(".text\n.p2align 4\n.globl sb_pad2\n.type sb_pad2,@function\n"
        "sb_pad2: ret\n int3\n.size sb_pad2,2\n");

SEED_NOCF int one_at2(void) { return 42; }

void *one_at2_addr(void) { return (void *)one_at2; }

// A function the compiler inlined into a caller (always_inline works at
// -O0 too) and also emitted out of line, because its address is taken:
// patching the out-of-line copy would miss use_inlined's calls. Refused.
static inline __attribute__((always_inline)) int inlined_one(void) { return 42; }
int use_inlined(void) { return inlined_one() + 1; }
void *inlined_one_addr(void) { return (void *)inlined_one; }

static volatile int stop;
static pthread_t threads[MAX_WORKERS];
static struct counts counts[MAX_WORKERS];
static int nthreads;

static int (*answer_fn)(void);

static void wrong(struct counts *c, int r) {
	c->wrong++;
	c->last_wrong = r;
}

static void *worker(void *arg) {
	struct counts *c = arg;
	while (!stop) {
		for (int i = 0; i < 16; i++) {
			int r = one();
			switch (r) {
			case 42: c->orig++; break;
			case 7: c->seven++; break;
			case 13: c->thirteen++; break;
			case 43: c->wrapped++; break;
			default: wrong(c, r);
			}
		}
		int a = answer_fn();
		if (a == 5)
			c->answer_orig++;
		else if (a == 13)
			c->answer_patched++;
		else
			wrong(c, a);
		int p = price_get(10, 3);
		if (p == 3010)
			c->price_orig++;
		else if (p == 3009)
			c->price_patched++;
		else
			wrong(c, p);
	}
	return 0;
}

int start_workers(int n, void *answer) {
	stop = 0;
	nthreads = 0;
	answer_fn = (int (*)(void))answer;
	memset(counts, 0, sizeof counts);
	for (int i = 0; i < n && i < MAX_WORKERS; i++) {
		if (pthread_create(&threads[i], 0, worker, &counts[i]) != 0)
			return -1;
		nthreads++;
	}
	return nthreads;
}

struct counts stop_workers(void) {
	struct counts sum = {0};
	stop = 1;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(threads[i], 0);
		sum.orig += counts[i].orig;
		sum.seven += counts[i].seven;
		sum.thirteen += counts[i].thirteen;
		sum.wrapped += counts[i].wrapped;
		sum.wrong += counts[i].wrong;
		sum.answer_orig += counts[i].answer_orig;
		sum.answer_patched += counts[i].answer_patched;
		sum.price_orig += counts[i].price_orig;
		sum.price_patched += counts[i].price_patched;
		if (counts[i].wrong)
			sum.last_wrong = counts[i].last_wrong;
	}
	return sum;
}

int call_one(void) { return one(); }

void *one_addr(void) { return (void *)one; }

// Go cannot call C function pointers: these helpers do.
void call_setter(void *setter, void *p) { ((void (*)(void *))setter)(p); }
int call_int_fn(void *fn) { return ((int (*)(void))fn)(); }
void *call_ptr_fn(void *fn) { return ((void *(*)(void))fn)(); }

#include <time.h>

// ns_per_call times n calls of fn through a pointer (the loop itself is
// built at -O0 like the rest of this file, so it adds the same to every
// figure).
double ns_per_call(void *fn, long n) {
	int (*f)(void) = (int (*)(void))fn;
	volatile int sink = 0;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		sink += f();
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
}
