package main

import (
	"reflect"
	"strconv"

	"github.com/switchboard-go/switchboard/registry"
)

// The demo's workload: a small pricing service. Each request calls six
// functions, each with a different prologue shape, and the demo patches
// all six while workers call them.
//
// Every implementation of a function, the original and each replacement,
// returns a value that says which implementation computed it (a tag in the
// low 4 bits, or the step of nextID) and that a model recomputes from the
// input alone. So every single call can be checked.

const unitCents = 250

// tagged packs an amount with the tag of the implementation that computed it.
func tagged(amount, tag int) int { return amount<<4 | tag }

// price: a leaf with no frame and no stack check; its first instruction
// (imul) is 7 bytes long.
//
//go:noinline
func price(qty int) int { return tagged(qty*unitCents, 0) }

// surcharge returns a closure: what it computes lives in its captured config.
func surcharge(pct, tag int) func(int) int {
	return func(qty int) int { return tagged(qty*unitCents*pct/100, tag) }
}

// Discount.Apply is installed as a method value, so the receiver travels
// in the closure context.
type Discount struct{ pct int }

func (d *Discount) Apply(qty int) int { return tagged(qty*unitCents*(100-d.pct)/100, 3) }

func bulkPrice(qty int) int { return tagged((qty-qty/10)*unitCents, 4) }

// nextID: the tiny leaf, inc rax; ret. A 5-byte jmp must pun the ret.
//
//go:noinline
func nextID(id int) int { return id + 1 }

func skipID(id int) int { return id + 2 }

func stride(step int) func(int) int { return func(id int) int { return id + step } }

// tax calls another function, so it starts with the standard stack check
// (cmp rsp, [r14+16]; jbe).
//
//go:noinline
func tax(cents int) int { return tagged(cents+vat(cents, 20), 0) }

//go:noinline
func vat(cents, pct int) int { return cents * pct / 100 }

func reducedTax(pct, tag int) func(int) int {
	return func(cents int) int { return tagged(cents+cents*pct/100, tag) }
}

func taxExempt(cents int) int { return tagged(cents, 2) }

// receipt lays a receipt out in an 8 KiB buffer on its stack. A frame over
// 4 KiB makes the stack check start with mov r12, rsp; sub r12, N; jb,
// which Switchboard patches past the mov (R12 is scratch at entry) when
// N's bytes rule out punning at the entry.
//
//go:noinline
func receipt(order int) int {
	var buf [8 << 10]byte
	b := strconv.AppendInt(buf[:0], int64(order), 10)
	sum := 0
	for _, c := range b {
		sum += int(c - '0')
	}
	return tagged(order<<8|sum, 0)
}

func stamped(store, tag int) func(int) int {
	return func(order int) int { return tagged(order<<8|store, tag) }
}

func noReceipt(order int) int { return tagged(order<<8, 2) }

// digitSum is receipt's model, computed without its buffer.
func digitSum(n int) int {
	s := 0
	for ; n > 0; n /= 10 {
		s += n % 10
	}
	return s
}

// loyalty fills a small table on its stack and calls nothing: a leaf with
// a frame has no stack check and starts with push rbp.
//
//go:noinline
func loyalty(points int) int {
	var tiers [8]int
	for i := range tiers {
		tiers[i] = points >> i
	}
	return tagged(tiers[points&7], 0)
}

func bonusPoints(bonus, tag int) func(int) int {
	return func(points int) int { return tagged(points+bonus, tag) }
}

func noLoyalty(points int) int { return tagged(points, 2) }

// Catalog is called through an interface: the patch is on the method
// (*tableCatalog).Unit and must catch the itab's indirect calls.
type Catalog interface{ Unit(sku int) int }

type tableCatalog struct{ cents [16]int }

//go:noinline
func (c *tableCatalog) Unit(sku int) int { return tagged(c.cents[sku&15], 0) }

func promo(pct, tag int) func(*tableCatalog, int) int {
	return func(c *tableCatalog, sku int) int { return tagged(c.cents[sku&15]*(100-pct)/100, tag) }
}

func flatUnit(c *tableCatalog, sku int) int { return tagged(100, 2) }

// The targets, in the order handle fills its results.
const (
	tPrice = iota
	tNextID
	tTax
	tReceipt
	tLoyalty
	tUnit
	nTargets
)

type service struct{ cat Catalog }

func newService() *service {
	c := &tableCatalog{}
	for i := range c.cents {
		c.cents[i] = 100 + 37*i
	}
	return &service{cat: c}
}

// handle serves one request. Each step calls a patchable function the way
// real code does: directly, or through the interface.
func (s *service) handle(x int, out *[nTargets]int) {
	out[tPrice] = price(x)
	out[tNextID] = nextID(x)
	out[tTax] = tax(x)
	out[tReceipt] = receipt(x)
	out[tLoyalty] = loyalty(x)
	out[tUnit] = s.cat.Unit(x)
}

// A patchTarget is one patchable function and the implementations the demo
// installs into it. impls[0] is the original.
type patchTarget struct {
	name   string
	shape  string
	entry  uintptr
	impls  []string          // what each implementation is
	models []func(x int) int // what each implementation must return for x
	apply  func(i int) error // install impls[i]: Set, or Reset for i == 0
	// recvs scopes implementations to a receiver (registry.ForReceiver):
	// implementation index -> receiver.
	recvs map[int]any
}

type patchVariant[F any] struct {
	name  string
	fn    F
	model func(x int) int
}

func newPatchTarget[F any](name, shape string, fn F, vs ...patchVariant[F]) *patchTarget {
	t := &patchTarget{name: name, shape: shape, entry: reflect.ValueOf(fn).Pointer()}
	for _, v := range vs {
		t.impls = append(t.impls, v.name)
		t.models = append(t.models, v.model)
	}
	cur := 0
	t.apply = func(i int) error {
		err := move(t, fn, vs[i].fn, cur, i)
		if err == nil {
			cur = i
		}
		return err
	}
	return t
}

// move installs implementation i, impl, of fn in place of cur. Between a
// global and a receiver-scoped patch it sets the new one first and then
// removes the old one: every call of the demo has the scoped receiver, so
// calls see the old implementation or the new one, never the original.
func move[F any](t *patchTarget, fn, impl F, cur, i int) error {
	recv, old := t.recvs[i], t.recvs[cur]
	switch {
	case i == 0:
		return registry.Reset(fn)
	case recv != nil:
		if err := registry.SetWith(fn, impl, registry.ForReceiver(recv)); err != nil || cur == 0 || old != nil {
			return err
		}
		return registry.ResetWith(fn)
	default:
		if err := registry.Set(fn, impl); err != nil || old == nil {
			return err
		}
		return registry.ResetWith(fn, registry.ForReceiver(old))
	}
}

// all is the mask of every implementation of t.
func (t *patchTarget) all() uint32 { return 1<<len(t.impls) - 1 }

// matches reports whether r is what one of the implementations in mask
// returns for x.
func (t *patchTarget) matches(x, r int, mask uint32) bool {
	for i, model := range t.models {
		if mask&(1<<i) != 0 && model(x) == r {
			return true
		}
	}
	return false
}

// serviceTargets describes s's functions, indexed like handle's results.
// The models restate each implementation's arithmetic independently.
func serviceTargets(s *service) []*patchTarget {
	cents := s.cat.(*tableCatalog).cents
	type intFn = func(int) int
	type unitFn = func(*tableCatalog, int) int
	ts := make([]*patchTarget, nTargets)
	ts[tPrice] = newPatchTarget("price", "leaf, no stack check", price,
		patchVariant[intFn]{"original", price, func(q int) int { return q*unitCents<<4 | 0 }},
		patchVariant[intFn]{"closure surcharge(125%)", surcharge(125, 1), func(q int) int { return q*unitCents*125/100<<4 | 1 }},
		patchVariant[intFn]{"closure surcharge(150%)", surcharge(150, 2), func(q int) int { return q*unitCents*150/100<<4 | 2 }},
		patchVariant[intFn]{"method value (&Discount{pct: 10}).Apply", (&Discount{pct: 10}).Apply, func(q int) int { return q*unitCents*90/100<<4 | 3 }},
		patchVariant[intFn]{"function bulkPrice", bulkPrice, func(q int) int { return (q-q/10)*unitCents<<4 | 4 }},
	)
	ts[tNextID] = newPatchTarget("nextID", "tiny leaf, 4 bytes", nextID,
		patchVariant[intFn]{"original", nextID, func(id int) int { return id + 1 }},
		patchVariant[intFn]{"function skipID", skipID, func(id int) int { return id + 2 }},
		patchVariant[intFn]{"closure stride(3)", stride(3), func(id int) int { return id + 3 }},
	)
	ts[tTax] = newPatchTarget("tax", "stack check, calls vat", tax,
		patchVariant[intFn]{"original", tax, func(c int) int { return (c+c*20/100)<<4 | 0 }},
		patchVariant[intFn]{"closure reducedTax(5%)", reducedTax(5, 1), func(c int) int { return (c+c*5/100)<<4 | 1 }},
		patchVariant[intFn]{"function taxExempt", taxExempt, func(c int) int { return c<<4 | 2 }},
	)
	ts[tReceipt] = newPatchTarget("receipt", "8 KiB frame, mov r12,rsp; sub r12,N", receipt,
		patchVariant[intFn]{"original", receipt, func(o int) int { return (o<<8|digitSum(o))<<4 | 0 }},
		patchVariant[intFn]{"closure stamped(store 7)", stamped(7, 1), func(o int) int { return (o<<8|7)<<4 | 1 }},
		patchVariant[intFn]{"function noReceipt", noReceipt, func(o int) int { return o<<8<<4 | 2 }},
	)
	ts[tLoyalty] = newPatchTarget("loyalty", "leaf with a frame: push rbp first", loyalty,
		patchVariant[intFn]{"original", loyalty, func(p int) int { return p>>(p&7)<<4 | 0 }},
		patchVariant[intFn]{"closure bonusPoints(50)", bonusPoints(50, 1), func(p int) int { return (p+50)<<4 | 1 }},
		patchVariant[intFn]{"function noLoyalty", noLoyalty, func(p int) int { return p<<4 | 2 }},
	)
	ts[tUnit] = newPatchTarget("(*tableCatalog).Unit", "method, called through an interface", (*tableCatalog).Unit,
		patchVariant[unitFn]{"original", (*tableCatalog).Unit, func(sku int) int { return cents[sku&15]<<4 | 0 }},
		patchVariant[unitFn]{"closure promo(20% off)", promo(20, 1), func(sku int) int { return cents[sku&15]*80/100<<4 | 1 }},
		patchVariant[unitFn]{"function flatUnit", flatUnit, func(int) int { return 100<<4 | 2 }},
		patchVariant[unitFn]{"closure promo(30% off), this catalog only (ForReceiver)", promo(30, 3), func(sku int) int { return cents[sku&15]*70/100<<4 | 3 }},
	)
	ts[tUnit].recvs = map[int]any{3: s.cat}
	return ts
}
