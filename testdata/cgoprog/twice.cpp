#include <stdint.h>

namespace sb {
int twice(int x) { return 2 * x; }
}

extern "C" uintptr_t twice_addr(void) { return (uintptr_t)&sb::twice; }
extern "C" int call_twice(int x) { return sb::twice(x); }
