package main

import (
	"testing"

	"github.com/shebao/shebao/bot/keyring"
)

// testKeys is SHEBAO_KEYS in the tests: one fixed 32-byte key.
const testKeys = "t1:dGVzdC1rZXktZm9yLXNoZWJhby1jbWQtdGVzdHMhISE="

func mustKeys(t *testing.T) *keyring.Ring {
	t.Helper()
	r, err := keyring.Parse(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
