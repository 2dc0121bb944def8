#include <stdint.h>

#define MAX_WORKERS 16

struct counts {
	int64_t orig, seven, thirteen, wrapped, wrong;
	int last_wrong;
	// lib_answer (in the .so: 5, patched 13) and shop::Price::get
	// through price_get(10, 3) (3010, patched 3009).
	int64_t answer_orig, answer_patched, price_orig, price_patched;
};

int one(void);
int start_workers(int n, void *answer);
struct counts stop_workers(void);
int call_one(void);
void *one_addr(void);
void *one_at2_addr(void);
void *inlined_one_addr(void);
void call_setter(void *setter, void *p);
int call_int_fn(void *fn);
double ns_per_call(void *fn, long n);
void *call_ptr_fn(void *fn);
int price_get(int base, int qty);
