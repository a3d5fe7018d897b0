package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportCommand: loyalty import sends a CSV file to a running server
// and prints the report with the file's line numbers; a progress file
// left by an interrupted run makes the next one resume after the lines it
// covers.
func TestImportCommand(t *testing.T) {
	m, _ := startMain(t)
	base := "http://" + m.Addr()
	dir := t.TempDir()
	file := filepath.Join(dir, "members.csv")
	csv := "external_id,email,points\n" +
		"c-1,a@example.com,100\n" +
		"c-2,b@example.com,200\n" +
		"c-3,not-an-email,300\n" +
		"c-4,d@example.com,400\n"
	os.WriteFile(file, []byte(csv), 0o644)
	code, out := runCLI(t, "import", file, "--url", base)
	if code != 1 || !strings.Contains(out, "created 3, unchanged 0, failed 1\n") || !strings.Contains(out, "line 4: email: ") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(file + ".progress"); !os.IsNotExist(err) {
		t.Errorf("the progress file outlived a finished import: %v", err)
	}
	code, out = runCLI(t, "import", file, "--url", base)
	if code != 1 || !strings.Contains(out, "created 0, unchanged 3, failed 1\n") {
		t.Errorf("re-run: exit %d\n%s", code, out)
	}

	// An interrupted run had sent the header and the first line.
	other := filepath.Join(dir, "more.csv")
	more := "external_id,points\nr-1,5\nr-2,6\nr-3,x\n"
	os.WriteFile(other, []byte(more), 0o644)
	offset := len("external_id,points\nr-1,5\n")
	os.WriteFile(other+".progress", fmt.Appendf(nil, `{"offset": %d, "line": 3, "report": {"created": 1, "unchanged": 0, "failed": 0, "errors": []}}`, offset), 0o644)
	code, out = runCLI(t, "import", other, "--url", base)
	if code != 1 || !strings.Contains(out, "resuming") || !strings.Contains(out, "created 2, unchanged 0, failed 1\n") || !strings.Contains(out, "line 4: points: ") {
		t.Fatalf("resumed import: exit %d\n%s", code, out)
	}
	// r-1 was never sent by this run: the resume skipped it.
	if ms := get(t, base+"/v1/members?external_id=r-1")["members"].([]any); len(ms) != 0 {
		t.Errorf("the resumed run sent line 2 again: %v", ms)
	}
	if ms := get(t, base+"/v1/members?external_id=r-2")["members"].([]any); len(ms) != 1 {
		t.Errorf("r-2 not imported: %v", ms)
	}
	if code, out := runCLI(t, "import", "--url", base); code != 2 {
		t.Errorf("without a file: exit %d %s", code, out)
	}
}
