package suppress_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayctl/relayctl/cmd/cmdtest"
)

func TestSuppressCommands(t *testing.T) {
	spool := t.TempDir()
	t.Setenv("RELAYCTL_SERVE_SPOOL", spool)
	if r := cmdtest.Run(t, "suppress", "add", "Bob@Example.org", "@trap.example", "--reason", "asked to stop"); r.Code != 0 {
		t.Fatalf("add: %d %s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(spool, "suppress.json")); err != nil {
		t.Fatalf("list not stored next to the queue: %v", err)
	}
	r := cmdtest.Run(t, "--json", "suppress", "list")
	var list []struct {
		Address, Source, Reason string
	}
	if err := json.Unmarshal(r.Envelope(t).Result, &list); err != nil || len(list) != 2 || list[0].Address != "@trap.example" || list[1].Reason != "asked to stop" {
		t.Fatalf("list %+v %v", list, err)
	}
	r = cmdtest.Run(t, "suppress", "list")
	if !strings.Contains(r.Stdout, "bob@example.org  manual") || !strings.Contains(r.Stdout, "2 suppressed") {
		t.Errorf("human list:\n%s", r.Stdout)
	}
	r = cmdtest.Run(t, "suppress", "export")
	if !strings.HasPrefix(r.Stdout, "address,source,reason,code,enhanced,added,expires\n") || !strings.Contains(r.Stdout, "bob@example.org,manual,asked to stop") {
		t.Errorf("export:\n%s", r.Stdout)
	}
	other := filepath.Join(t.TempDir(), "copy.json")
	if r := cmdtest.RunStdin(t, strings.NewReader(r.Stdout), "suppress", "--file", other, "import", "-"); r.Code != 0 || !strings.Contains(r.Stdout, "2 address(es) imported") {
		t.Fatalf("import: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := cmdtest.Run(t, "suppress", "remove", "bob@example.org", "nobody@example.org"); r.Code != 1 || !strings.Contains(r.Stdout, "suppress.not-listed") {
		t.Errorf("remove: %d\n%s", r.Code, r.Stdout)
	}
	if r := cmdtest.Run(t, "suppress", "add", "not an address"); r.Code != 2 {
		t.Errorf("bad address: exit %d", r.Code)
	}
	if r := cmdtest.RunStdin(t, strings.NewReader("ok@example.org\nbad line here\n"), "suppress", "import", "-"); r.Code != 2 {
		t.Errorf("bad import: exit %d", r.Code)
	}
	t.Setenv("RELAYCTL_SERVE_SUPPRESSION_ACTION", "bounce")
	if r := cmdtest.Run(t, "suppress", "list"); r.Code != 2 {
		t.Errorf("bad policy: exit %d %s", r.Code, r.Stderr)
	}
}
