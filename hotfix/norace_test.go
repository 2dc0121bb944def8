//go:build !race

package hotfix_test

const raceBuild = false
