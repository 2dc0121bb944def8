// Package debug serves a read-only view of Switchboard's redirects over
// HTTP, in the manner of net/http/pprof. Nothing listens by itself: mount
// the handler where you want it, behind whatever access control the rest
// of your debug endpoints have.
//
//	mux.Handle("/debug/switchboard/", debug.Handler())
//
// GET returns an HTML table of every function Switchboard has patched
// (registry.List): function, scope, target, tactic, when it was set and how
// often it was retargeted since. With ?format=json, or an Accept header
// that names application/json (and not text/html first), it returns JSON
// instead:
//
//	{"redirects": [{"func": "main.price", "entry": "0x4a5b20", "scope": "global",
//	  "target": "main.fixedPrice", "active": true, "tactic": "punned-jump",
//	  "mode": "site", "site": "0x7a4b1c000", "set_at": "2026-11-26T09:00:00Z",
//	  "retargets": 0}]}
//
// HEAD is answered like GET without a body; every other method gets 405.
// No endpoint changes anything.
//
// It owns the read-only HTTP view of registry.List. It must not change any
// patch, and it never listens on a port: the user mounts the handler.
package debug
