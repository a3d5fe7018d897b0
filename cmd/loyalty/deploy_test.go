package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/rules"
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
	analyze := tool(t, "systemd-analyze", "systemd")
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

// tool finds a program a test needs beyond Go. Where it is missing the
// test is skipped, saying what to install, unless LOYALTY_REQUIRE_TOOLS is
// set (CI installs them), which makes it fail instead.
func tool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed here, so this is not checked (apt-get install " + debianPackage + ")"
	if os.Getenv("LOYALTY_REQUIRE_TOOLS") != "" {
		t.Fatal(msg + ", but LOYALTY_REQUIRE_TOOLS is set")
	}
	t.Skip(msg)
	return ""
}

// TestAlertRules: the example alert rules and configuration of
// docs/OPERATIONS.md are valid for Prometheus, and the rules fire as their
// tests say.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "../../deploy/prometheus/loyalty.rules.yml"},
		{"test", "rules", "../../deploy/prometheus/loyalty.rules.test.yml"},
		{"check", "config", "../../deploy/prometheus/prometheus.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesNameExportedMetrics: the alert rules name only metrics a
// running server exports, so a renamed metric cannot silence an alert.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	src, err := os.ReadFile("../../deploy/prometheus/loyalty.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := startMain(t)
	base := "http://" + m.Addr()
	// The first start runs every job (catch-up), backup among them.
	eventually(t, "the first runs", func() bool { last, _ := jobTimes(t, m); return len(last) == len(rules.JobNames()) })
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	scraped, _ := io.ReadAll(res.Body)
	if promtool, err := exec.LookPath("promtool"); err == nil {
		lint := exec.Command(promtool, "check", "metrics")
		lint.Stdin = strings.NewReader(string(scraped))
		if out, err := lint.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on a scrape: %v\n%s", err, out)
		}
	}
	for _, name := range regexp.MustCompile(`loyalty_[a-z_]+`).FindAllString(string(src), -1) {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !strings.Contains(string(scraped), "# TYPE "+family+" ") {
			t.Errorf("the alert rules use %s, which /metrics does not export", name)
		}
	}
}

// TestSysusersFile: systemd-sysusers makes the service's user from
// deploy/loyalty.sysusers (tried on a scratch root, not this machine).
func TestSysusersFile(t *testing.T) {
	sysusers := tool(t, "systemd-sysusers", "systemd")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	conf, _ := filepath.Abs("../../deploy/loyalty.sysusers")
	out, err := exec.Command(sysusers, "--root", root, conf).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil || !regexp.MustCompile(`(?m)^loyalty:x:\d+:\d+:loyalty engine:/var/lib/loyalty:`).Match(passwd) {
		t.Fatalf("passwd after sysusers: %v\n%s\n%s", err, passwd, out)
	}
}

// freshMachine lays out what docs/OPERATIONS.md has a new machine make: a
// keys file and a certificate under etc, an empty state directory. It
// returns the two directories and the admin key.
func freshMachine(t *testing.T) (etc, state, admin string) {
	t.Helper()
	root := t.TempDir()
	etc, state = filepath.Join(root, "etc", "loyalty"), filepath.Join(root, "var", "lib", "loyalty")
	os.MkdirAll(filepath.Join(etc, "tls"), 0o750)
	os.MkdirAll(state, 0o700)
	certFile, keyFile, _ := selfSigned(t, t.TempDir(), "server")
	os.Rename(certFile, filepath.Join(etc, "tls", "cert.pem"))
	os.Rename(keyFile, filepath.Join(etc, "tls", "key.pem"))
	os.WriteFile(filepath.Join(etc, "keys.yaml"), keysFile("ops", adminKey), 0o640)
	return etc, state, adminKey
}

// onMachine rewrites the paths of the unit or the image to the test's.
func onMachine(s, etc, state string) string {
	return strings.NewReplacer("/etc/loyalty", etc, "/var/lib/loyalty", state).Replace(s)
}

// TestUnitStartsOnAFreshMachine runs the unit's ExecStart as systemd
// would (in WorkingDirectory, on an empty StateDirectory): serve must come
// up over HTTPS, write the example rules, and take its first backup.
func TestUnitStartsOnAFreshMachine(t *testing.T) {
	etc, state, admin := freshMachine(t)
	args := unitExecStart(t)[1:]
	for i, a := range args {
		args[i] = onMachine(a, etc, state)
		if a == "0.0.0.0:8443" {
			args[i] = "127.0.0.1:0"
		}
	}
	p := startProcess(t, state, nil, args...)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if got := statusWith(t, insecure, "https://"+p.addr+"/v1/jobs", admin); got != 200 {
		t.Fatalf("GET /v1/jobs over HTTPS: %d\n%s", got, p.log)
	}
	if _, err := os.Stat(filepath.Join(state, "rules.yaml")); err != nil {
		t.Fatalf("no example rules in the state directory: %v", err)
	}
	eventually(t, "the first backup", func() bool {
		copies, _ := filepath.Glob(filepath.Join(state, "backups", "loyalty-*.db"))
		return len(copies) == 1
	})
	if strings.Contains(p.log.String(), "travel in clear") || !strings.Contains(p.log.String(), `"level":"INFO"`) {
		t.Errorf("the unit's server should log JSON and not warn:\n%s", p.log)
	}
}

// TestImageStartsOnAFreshVolume runs the image's CMD with its ENV, as
// docker run would (in its WORKDIR, on an empty volume), and then its
// HEALTHCHECK command in the same environment.
func TestImageStartsOnAFreshVolume(t *testing.T) {
	src, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	etc, state, admin := freshMachine(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	var env []string
	for _, e := range regexp.MustCompile(`(LOYALTY_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(strings.ReplaceAll(string(src), "\\\n", " "), -1) {
		v := onMachine(e[2], etc, state)
		if e[1] == "LOYALTY_ADDR" {
			v = strings.Replace(v, ":8080", ":"+port, 1) // 0.0.0.0, as in the image
		}
		env = append(env, e[1]+"="+v)
	}
	cmd := regexp.MustCompile(`(?m)^CMD \["([a-z]+)"\]$`).FindStringSubmatch(string(src))
	p := startProcess(t, state, env, cmd[1])
	if got := statusWith(t, http.DefaultClient, "http://127.0.0.1:"+port+"/v1/jobs", admin); got != 200 {
		t.Fatalf("GET /v1/jobs: %d\n%s", got, p.log)
	}
	health := exec.Command(loyaltyBinary(t), "health")
	health.Env = append(os.Environ(), env...)
	if out, err := health.CombinedOutput(); err != nil || !strings.Contains(string(out), `"status":"ok"`) {
		t.Fatalf("the HEALTHCHECK command: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(state, "rules.yaml")); err != nil {
		t.Fatalf("no example rules in the volume: %v", err)
	}
}
