//go:build !race

package crashtest

// raceEnabled builds the server with the race detector too, so the race
// runs in CI also watch the server under real concurrency.
const raceEnabled = false
