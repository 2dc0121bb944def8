// Package layers keeps, for each function patched through Switchboard's
// test helpers (compat/gomonkey, registrytest), the stack of replacements
// set on it in each scope, so that undoing one restores the one below it,
// whatever order the undos come in: the undo semantics of gomonkey and
// mockey.
//
// Only patches made through this package are known: a registry.Set made
// directly on the same function is overwritten by the next Push or Pop.
//
// It owns the per-function stacks of patches that registrytest and
// compat/gomonkey undo in order. It must not decide what may be patched:
// registry does.
package layers
