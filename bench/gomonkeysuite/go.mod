module github.com/switchboard-go/switchboard/bench/gomonkeysuite

go 1.26.0

require github.com/switchboard-go/switchboard v0.0.0

require (
	github.com/ianlancetaylor/demangle v0.0.0-20260724033716-83e58baca724 // indirect
	golang.org/x/arch v0.33.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/switchboard-go/switchboard => ../..
