package rules

import _ "embed"

// Example is the example program shipped in the binary: `loyalty serve`
// writes it to rules.yaml on first start so a newcomer has a file to edit.
//
//go:embed example.yaml
var Example []byte
