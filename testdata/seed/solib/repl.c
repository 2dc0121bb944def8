// Replacements for the seed scenario, built as a shared object and loaded
// with dlopen, far (more than 2 GiB) from the executable's `one`.
int seven(void) { return 7; }
int thirteen(void) { return 13; }

// wrapped calls the original `one` through the trampoline OriginalC gave.
static int (*orig_one)(void);
void set_orig(void *p) { orig_one = (int (*)(void))p; }
int wrapped(void) { return orig_one() + 1; }

// discount replaces shop::Price::get(int) const: `this` comes first.
int discount(const int *self, int qty) { return qty * 1000 + *self - 1; }

// hidden is not exported: a stripped copy of this object has no symbol
// for it.
static int hidden(void) { return 99; }
void *hidden_addr(void) { return (void *)hidden; }

// lib_answer is patched inside this object: its relay site must be
// mapped near the object, wherever the loader put it.
__attribute__((aligned(16))) int lib_answer(void) { return 5; }
int call_lib_answer(void) { return lib_answer(); }
