// A C++ method for LookupSymbol: patched by its demangled name,
// "shop::Price::get(int) const".
namespace shop {
struct Price {
	int base;
	int get(int qty) const;
	int total(int qty) const;
};

__attribute__((noinline)) int Price::get(int qty) const { return qty * 1000 + base; }
// total is inlined into price_total (-O2) and kept out of line for
// total_addr: SetC must refuse it, by its DWARF linkage name.
__attribute__((always_inline)) inline int Price::total(int qty) const { return base * qty + 7; }
}  // namespace shop

extern "C" int price_total(int base, int qty) {
	shop::Price p{base};
	return p.total(qty);
}

extern "C" void *total_addr(void) {
	int (shop::Price::*m)(int) const = &shop::Price::total;
	return *(void **)&m;
}

extern "C" int price_get(int base, int qty) {
	shop::Price p{base};
	return p.get(qty);
}
