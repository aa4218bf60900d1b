package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "shebao ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version: %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"version", "--json"}, env(nil), nil, &out, &out); err != nil || !strings.Contains(out.String(), `"version":`) {
		t.Errorf("version --json: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"version", "-x"}, env(nil), nil, &out, &out); err == nil {
		t.Error("version -x accepted")
	}
}

// The stamped version wins; without one the module version, then
// "devel"; the VCS revision comes from the toolchain unless stamped.
func TestBuildFrom(t *testing.T) {
	read := func(main string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: main}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
			}}, true
		}
	}
	for _, c := range []struct {
		stamped, stampedRev, main string
		want, wantRev             string
	}{
		{"v1.4.0", "", "(devel)", "v1.4.0", "0123456789abcdef0123"},
		{"", "", "v1.3.2", "v1.3.2", "0123456789abcdef0123"},
		{"", "", "(devel)", "devel", "0123456789abcdef0123"},
		{"v2.0.0", "feedface", "", "v2.0.0", "feedface"},
	} {
		b := buildFrom(c.stamped, c.stampedRev, read(c.main))
		if b.Version != c.want || b.Revision != c.wantRev || b.Go != "go1.99.1" || !b.Modified {
			t.Errorf("%+v: got %+v", c, b)
		}
	}
	b := buildFrom("v1.4.0", "", read(""))
	if s := b.String(); s != "shebao v1.4.0 (revision 0123456789ab with uncommitted changes, committed 2026-12-01T10:00:00Z, go1.99.1 "+b.Platform+")" {
		t.Errorf("String() = %q", s)
	}
	if b := buildFrom("", "", func() (*debug.BuildInfo, bool) { return nil, false }); b.Version != "devel" || b.Go == "" {
		t.Errorf("without build info: %+v", b)
	}
}
