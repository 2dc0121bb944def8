#include <stdint.h>

#define MAX_WORKERS 16

struct counts {
	int64_t orig, seven, thirteen, wrapped, wrong;
	int last_wrong;
};

int one(void);
int start_workers(int n);
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
