package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/records"
)

// snapshot is every file in dir with its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = string(b)
	}
	return out
}

// checkUnchanged fails unless every file is as it was. A reader of a WAL
// file in a writable folder may leave the index SQLite keeps beside it
// (records.db-shm) and an empty records.db-wal: nothing of the records.
func checkUnchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s changed", name)
		}
	}
	for name, b := range after {
		if _, ok := before[name]; ok {
			continue
		}
		if !(name == "records.db-shm" || name == "records.db-wal" && b == "") {
			t.Errorf("%s created (%d bytes)", name, len(b))
		}
	}
}

// personsCSV holds the first demo person.
func personsCSV(t *testing.T, dir string) string {
	t.Helper()
	p := records.Demo()[0]
	path := filepath.Join(dir, "persons.csv")
	body := "id_number,name,phone,region,category,employer\n" +
		fmt.Sprintf("%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each bad RECORDS_DB stops serve, chat and remind before they answer
// anybody, with one line that names the file, the problem and what to do,
// and leaves the folder exactly as it was: a mistyped path creates nothing.
func TestBadRecordsFileRefusesToStart(t *testing.T) {
	foreign, err := os.ReadFile(filepath.Join("testdata", "foreign.db")) // an SQLite file of another program
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name       string
		make       func(t *testing.T, path string)
		want       error
		says, hint string
	}{
		{"mistyped path", func(*testing.T, string) {}, records.ErrMissing, "no such file", "check RECORDS_DB"},
		{"zero bytes", func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) }, records.ErrEmpty, "empty file", "shebao import --persons"},
		{"random bytes", func(t *testing.T, p string) { os.WriteFile(p, random, 0o600) }, records.ErrForeign, "not an SQLite database", "written by shebao import"},
		{"foreign SQLite database", func(t *testing.T, p string) { os.WriteFile(p, foreign, 0o600) }, records.ErrForeign, "schema_migrations", "written by shebao import"},
		{"no persons", func(t *testing.T, p string) {
			db, err := records.OpenForImport(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, records.ErrNoPersons, "no persons", "shebao import --persons"},
		{"damaged", func(t *testing.T, p string) {
			os.WriteFile(p, append([]byte("SQLite format 3\x00"), random...), 0o600)
		}, records.ErrCorrupt, "damaged file", "good copy"},
	}
	commands := [][]string{{"serve"}, {"chat"}, {"remind", "--once", "--dry-run"}}
	for _, c := range cases {
		for _, args := range commands {
			t.Run(c.name+"/"+args[0], func(t *testing.T) {
				fake := telegramtest.New(testToken)
				defer fake.Close()
				dir := t.TempDir()
				path := filepath.Join(dir, "records.db")
				c.make(t, path)
				before := snapshot(t, dir)
				vars := map[string]string{"RECORDS_DB": path, "TELEGRAM_BOT_TOKEN": testToken,
					"TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0", "SHEBAO_KEYS": testKeys}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var out, logs syncBuffer
				err := run(ctx, args, env(vars), strings.NewReader("/start\n"), &out, &logs)
				if err == nil {
					t.Fatalf("started with a bad records file; output:\n%s", out.String())
				}
				if !errors.Is(err, c.want) {
					t.Errorf("error %v, want %v", err, c.want)
				}
				msg := err.Error()
				if !strings.Contains(msg, path) || !strings.Contains(msg, c.says) || !strings.Contains(msg, c.hint) || strings.Contains(msg, "\n") {
					t.Errorf("message %q: want one line naming %s, %q and %q", msg, path, c.says, c.hint)
				}
				if n := len(fake.Calls("")); n != 0 {
					t.Errorf("%d Bot API calls before refusing", n)
				}
				if strings.Contains(out.String(), "社保医保小助手") || strings.Contains(logs.String(), `"msg":"listening"`) {
					t.Errorf("answered before refusing:\n%s", out.String())
				}
				checkUnchanged(t, before, snapshot(t, dir))
			})
		}
	}
}

// A records file on a read-only mount: import publishes it 0600, complete
// on its own, and serve and chat open it without writing anything beside
// it.
func TestReadOnlyRecordsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	var out, logs syncBuffer
	if err := run(context.Background(), []string{"import", "--persons", personsCSV(t, t.TempDir())},
		env(map[string]string{"RECORDS_DB": path}), nil, &out, &logs); err != nil {
		t.Fatalf("import: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1 persons") {
		t.Errorf("import output: %s", out.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("import created the records file %04o, want 0600", m)
	}
	if n := snapshot(t, dir); len(n) != 1 {
		t.Errorf("after import the folder holds %d files, want the records file alone (the -wal merged)", len(n))
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	root := os.Geteuid() == 0
	if root {
		t.Log("running as root: chmod does not stop root, so this runs the read-only folder without enforcing it; " +
			"records.TestOpenReadOnlyFolder proves the immutable path directly")
	}

	p := records.Demo()[0]
	in := strings.NewReader("/verify\n" + p.ID + "\n/contact " + p.Phone + "\n/records\n")
	out = syncBuffer{}
	if err := run(context.Background(), []string{"chat"}, env(map[string]string{"RECORDS_DB": path}), in, &out, &logs); err != nil {
		t.Fatalf("chat: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"验证成功", "近24个月缴费记录"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("chat output lacks %q:\n%s", want, out.String())
		}
	}

	fake := telegramtest.New(testToken)
	defer fake.Close()
	slogs, stop := startServe(t, map[string]string{"RECORDS_DB": path, "TELEGRAM_BOT_TOKEN": testToken,
		"TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0", "SHEBAO_KEYS": testKeys})
	listenAddr(t, slogs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(slogs.String(), `"msg":"records opened"`) || !strings.Contains(slogs.String(), `"persons":1`) {
		t.Errorf("serve does not log the records it opened:\n%s", slogs.String())
	}
	if !root {
		// The published file uses the rollback journal: read-only, it
		// needs no -shm, so no immutable fallback either.
		if !strings.Contains(slogs.String(), `"immutable":false`) {
			t.Errorf("published file opened as an immutable image:\n%s", slogs.String())
		}
		if n := snapshot(t, dir); len(n) != 1 {
			t.Errorf("files written beside the records file: %v", len(n))
		}
	}
	assertNoPersonalData(t, slogs.String())
}

// import never writes into a file that is not a records file, never creates
// one with --migrate, and takes other users' access away from an existing
// one.
func TestImportRecordsFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	persons := personsCSV(t, t.TempDir())
	foreign, err := os.ReadFile(filepath.Join("testdata", "foreign.db"))
	if err != nil {
		t.Fatal(err)
	}
	fpath := filepath.Join(dir, "other.db")
	os.WriteFile(fpath, foreign, 0o644)
	var out, logs bytes.Buffer
	err = run(ctx, []string{"import", "--persons", persons}, env(map[string]string{"RECORDS_DB": fpath}), nil, &out, &logs)
	if !errors.Is(err, records.ErrForeign) || !strings.Contains(err.Error(), "nothing written") {
		t.Errorf("import into a foreign database: %v", err)
	}
	if b, _ := os.ReadFile(fpath); !bytes.Equal(b, foreign) {
		t.Error("import changed the foreign database")
	}

	missing := filepath.Join(dir, "missing.db")
	err = run(ctx, []string{"import", "--migrate"}, env(map[string]string{"RECORDS_DB": missing}), nil, &out, &logs)
	if err == nil || !strings.Contains(err.Error(), "never creates") {
		t.Errorf("import --migrate of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("import --migrate created %s", missing)
	}

	path := filepath.Join(dir, "records.db")
	vars := env(map[string]string{"RECORDS_DB": path})
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("id_number,name\n"), 0o600)
	if err := run(ctx, []string{"import", "--persons", bad}, vars, nil, &out, &logs); err == nil {
		t.Fatal("import of a bad file succeeded")
	}
	if n := snapshot(t, dir); len(n) != 1 {
		t.Errorf("a rejected import into a new file left %d files, want none beside other.db", len(n)-1)
	}
	if err := run(ctx, []string{"import", "--persons", persons}, vars, nil, &out, &logs); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	out.Reset()
	if err := run(ctx, []string{"import", "--migrate"}, vars, nil, &out, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "schema version 1") || !strings.Contains(out.String(), "Removed other users' access") {
		t.Errorf("import --migrate output:\n%s", out.String())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after import: %04o, want 0640", fi.Mode().Perm())
	}
	if err := run(ctx, []string{"import", "--migrate", "--persons", persons}, vars, nil, &out, &logs); err == nil {
		t.Error("import --migrate with files accepted")
	}
}

// Refusals no end-to-end test can produce with this release's schema still
// tell the operator what to run.
func TestRecordsHints(t *testing.T) {
	for _, c := range []struct {
		err  error
		hint string
	}{
		{records.ErrOldSchema, "shebao import --migrate"},
		{records.ErrUnmerged, "-wal"},
		{os.ErrPermission, "chmod 640"},
	} {
		err := &records.OpenError{Path: "/data/records.db", Err: c.err}
		if h := recordsHint(err); !strings.Contains(h, c.hint) {
			t.Errorf("%v: hint %q, want %q", c.err, h, c.hint)
		}
	}
}
