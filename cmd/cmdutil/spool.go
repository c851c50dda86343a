package cmdutil

import (
	"os"
	"path/filepath"
)

// KeySpool is the relay's queue directory (`serve.spool`).
const KeySpool = "serve.spool"

// Spool is the relay's spool directory: serve.spool, else
// $XDG_STATE_HOME/relayctl/spool (or ~/.local/state/relayctl/spool), the
// relay's own default.
func (f *Factory) Spool() string {
	if s := f.Config.GetString(KeySpool); s != "" {
		return s
	}
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join(os.TempDir(), "relayctl", "spool")
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "relayctl", "spool")
}
