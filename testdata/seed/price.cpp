// A C++ method for LookupSymbol: patched by its demangled name,
// "shop::Price::get(int) const".
namespace shop {
struct Price {
	int base;
	int get(int qty) const;
};

__attribute__((noinline)) int Price::get(int qty) const { return qty * 1000 + base; }
}  // namespace shop

extern "C" int price_get(int base, int qty) {
	shop::Price p{base};
	return p.get(qty);
}
