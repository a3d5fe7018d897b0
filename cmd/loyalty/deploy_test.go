package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The unit and the Dockerfile in the repository start serve with flags
// and variables; these tests keep them to the ones serve has, so that a
// renamed flag fails here and not on a production machine at boot.

// unitExecStart is the ExecStart command of deploy/loyalty.service, its
// continuation lines joined.
func unitExecStart(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../../deploy/loyalty.service")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(src), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(joined)
	if m == nil {
		t.Fatal("the unit has no ExecStart")
	}
	return strings.Fields(m[1])
}

func TestUnitNamesOnlyServeFlags(t *testing.T) {
	args := unitExecStart(t)
	if len(args) < 2 || args[0] != "/usr/local/bin/loyalty" || args[1] != "serve" {
		t.Fatalf("ExecStart = %v, want /usr/local/bin/loyalty serve …", args)
	}
	flags := serveFlagSet()
	for _, a := range args[2:] {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			if flags[name] == nil {
				t.Errorf("the unit passes --%s, which serve does not have", name)
			}
		}
	}
	// Parse the command line as serve would, so that a flag given a value
	// it refuses fails too.
	var cfg Config
	fs := serveFlags(&cfg, os.Stderr)
	if err := fs.Parse(args[2:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("serve refuses the unit's command line: %v %v", err, fs.Args())
	}
	if cfg.KeysPath == "" || cfg.TLSCert == "" || cfg.BackupDir == "" || !strings.HasPrefix(cfg.DBPath, "/var/lib/loyalty/") {
		t.Errorf("the unit should run with keys, TLS and backups in its state directory: %+v", cfg)
	}
	src, _ := os.ReadFile("../../deploy/loyalty.service")
	for _, want := range []string{"User=loyalty", "StateDirectory=loyalty", "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart pointed at a built binary (verify checks that it exists).
// systemd-analyze exits 0 on unknown keys and bad values, so any output
// is a failure.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here, so the unit is not verified (apt-get install systemd)")
	}
	src, err := os.ReadFile("../../deploy/loyalty.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "loyalty.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(src), "/usr/local/bin/loyalty", loyaltyBinary(t))), 0o644)
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "\\\n", " ")
	flags := serveFlagSet()
	byEnv := map[string]string{}
	for name := range flags {
		byEnv[envName(name)] = name
	}
	// Every LOYALTY_ variable the image sets is one serve reads, and its
	// value is one the flag takes.
	env := regexp.MustCompile(`(LOYALTY_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(text, -1)
	if len(env) == 0 {
		t.Fatal("the Dockerfile sets no LOYALTY_ variable")
	}
	for _, e := range env {
		name, ok := byEnv[e[1]]
		if !ok {
			t.Errorf("the Dockerfile sets %s, which no flag of serve reads", e[1])
			continue
		}
		if err := serveFlags(&Config{}, os.Stderr).Set(name, e[2]); err != nil {
			t.Errorf("%s=%s: %v", e[1], e[2], err)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`RUN CGO_ENABLED=0 go build`),
		// The -X targets loyaltyBinary builds with, which TestStaticBuildAndVersion proves take.
		regexp.MustCompile(`-X github.com/loyaltyhq/loyalty/internal/version.Version=\$\{VERSION\} -X github.com/loyaltyhq/loyalty/internal/version.Commit=\$\{COMMIT\}`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^VOLUME \["/var/lib/loyalty"\]$`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .* CMD \["/usr/local/bin/loyalty", "health"\]$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/loyalty"\]$`),
		regexp.MustCompile(`(?m)^CMD \["serve"\]$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
	// The image's paths are in its volume, so that the state outlives the
	// container.
	for _, e := range env {
		if strings.HasSuffix(e[1], "_DB") || strings.HasSuffix(e[1], "_RULES") || strings.HasSuffix(e[1], "_BACKUP_DIR") {
			if !strings.HasPrefix(e[2], "/var/lib/loyalty/") {
				t.Errorf("%s=%s is outside the volume", e[1], e[2])
			}
		}
	}
}
