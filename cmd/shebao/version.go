package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and revision are stamped at build time:
//
//	go build -ldflags "-X main.version=v1.4.0 -X main.revision=$(git rev-parse HEAD)" ./cmd/shebao
//
// The Dockerfile passes its VERSION and REVISION build arguments. Left
// empty, they come from what the Go toolchain recorded (debug.ReadBuildInfo:
// the module version for `go install …@v1.4.0`, the VCS revision for a
// build inside a git checkout).
var (
	version  string
	revision string
)

// buildInfo is what `shebao version`, the start-up log and the
// shebao_build_info metric say about this binary.
type buildInfo struct {
	Version  string `json:"version"`            // "devel" when nothing says otherwise
	Revision string `json:"revision,omitempty"` // VCS commit
	Time     string `json:"time,omitempty"`     // commit time (RFC 3339)
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// readBuild reads the stamped values, falling back to the toolchain's.
func readBuild() buildInfo {
	return buildFrom(version, revision, debug.ReadBuildInfo)
}

func buildFrom(stamped, stampedRev string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: stamped, Revision: stampedRev, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			b.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Revision == "" {
					b.Revision = s.Value
				}
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// String is one line: "shebao v1.4.0 (revision 0123abcd, go1.26.10 linux/amd64)".
func (b buildInfo) String() string {
	var parts []string
	if b.Revision != "" {
		r := "revision " + b.Revision[:min(12, len(b.Revision))]
		if b.Modified {
			r += " with uncommitted changes"
		}
		parts = append(parts, r)
	}
	if b.Time != "" {
		parts = append(parts, "committed "+b.Time)
	}
	parts = append(parts, b.Go+" "+b.Platform)
	return "shebao " + b.Version + " (" + strings.Join(parts, ", ") + ")"
}

// runVersion is `shebao version [--json]`.
func runVersion(args []string, stdout io.Writer) error {
	b := readBuild()
	switch {
	case len(args) == 0:
		fmt.Fprintln(stdout, b.String())
		return nil
	case len(args) == 1 && args[0] == "--json":
		return json.NewEncoder(stdout).Encode(b)
	}
	return fmt.Errorf("version: unexpected argument %q (only --json)", args[0])
}
