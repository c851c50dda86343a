package queue

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecover: whatever an envelope file holds (a disk that returned
// garbage, an operator's edit), Open neither panics nor fails; the file
// is either recovered or set aside as corrupt.
func FuzzRecover(f *testing.F) {
	f.Add([]byte(`{"id":"ABC","from":"a@b","recipients":[{"address":"x@y","state":"queued"}]}`), []byte("body"))
	f.Add([]byte(`{"id":"ABC","recipients":[{"address":"x@y","state":"delivered"}]}`), []byte(""))
	f.Add([]byte(`{"id":"ABC","recipients":[{"address":"x@y","state":"deferred","next_attempt":"2026-01-01T00:00:00Z"}]}`), []byte("x"))
	f.Add([]byte(`{"id":"OTHER","recipients":[]}`), []byte("x"))
	f.Add([]byte("{"), []byte{})
	f.Add([]byte(`null`), []byte{})
	f.Fuzz(func(t *testing.T, env, msg []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "ABC.env"), env, 0o600)
		os.WriteFile(filepath.Join(dir, "ABC.msg"), msg, 0o600)
		q, err := Open(dir, Options{Fsync: false})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer q.Close()
		if q.Len() > 1 {
			t.Fatalf("Len = %d", q.Len())
		}
		if q.Len() == 1 {
			e, err := q.Get("ABC")
			if err != nil || e.ID != "ABC" || !e.Pending() {
				t.Fatalf("recovered %+v %v", e, err)
			}
			_ = q.Due(e.Received)
		} else if len(q.Corrupt()) == 0 {
			if _, err := os.Stat(filepath.Join(dir, "ABC.env")); err == nil {
				t.Fatal("envelope neither queued, removed nor set aside")
			}
		}
	})
}
