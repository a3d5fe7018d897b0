package rules

import _ "embed"

// Example is the example program shipped in the binary: `loyalty serve`
// writes it to rules.yaml on first start so a newcomer has a file to edit.
//
//go:embed example.yaml
var Example []byte

// Schema is the JSON Schema of the rules file, for editors: VS Code's YAML
// extension completes and checks keys with it. Parse remains the authority.
//
//go:embed schema.json
var Schema []byte
