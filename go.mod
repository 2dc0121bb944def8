module github.com/switchboard-go/switchboard

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/ianlancetaylor/demangle v0.0.0-20260724033716-83e58baca724
	golang.org/x/arch v0.33.0
	golang.org/x/sys v0.50.0
)
