// Package crashtest proves that the loyalty server loses nothing and doubles
// nothing. Its tests build the real binary, run it as a process over a temp
// database, drive it with concurrent simulated tills that retry with the
// same ids and bodies, kill it with SIGKILL at random moments or stop it
// with SIGTERM under load, and compare the database with a model computed
// from the acknowledged requests alone.
//
// TestCrashPostgres does the same with two servers on one PostgreSQL
// database (LOYALTY_TEST_POSTGRES, as the other PostgreSQL tests): each
// kill takes either, and the tills post through both in turn, so a retry
// usually reaches the other server.
//
// TestWebhooksSurviveKills (and its PostgreSQL form, two servers) kills
// the server under load while webhook deliveries are pending and while
// the receiver is down, and proves that every event reaches a receiver
// that verifies each signature, duplicates carrying the same id and body.
//
// The short forms run with go test ./...; the long forms run 20 runs each:
//
//	go test ./crashtest -run Crash -crash.long -v
//
// Every run logs its seed; -crash.seed=N replays the schedule of a run
// (which requests, which kills when), though not the exact interleaving,
// which is the operating system's.
package crashtest
