package registrytest_test

import (
	"testing"

	"github.com/switchboard-go/switchboard/registrytest"
)

func TestMain(m *testing.M) { registrytest.Main(m) }
