package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestWebOptions(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseOptions([]string{"--scenario", "web", "--users", "5000", "--web-rate", "200"}, &stderr)
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if o.users != 5000 || o.web.rate != 200 || o.web.dialRate != 500 {
		t.Errorf("options %+v", o.web)
	}
	for _, bad := range [][]string{
		{"--scenario", "web", "--web-rate", "0"},
		{"--scenario", "web", "--web-dial-rate", "-1"},
		{"--scenario", "web", "--web-connect-timeout", "1h"},
	} {
		if _, err := parseOptions(bad, &stderr); err == nil || !strings.Contains(err.Error(), bad[2]) {
			t.Errorf("%v: error %v, want one naming %s", bad, err, bad[2])
		}
	}
}

// A run that lost answers, failed to connect or was cut off lists it and
// exits 3; a clean one says so.
func TestWebReportProblems(t *testing.T) {
	clean := &webReport{Sessions: 10, Connected: 10, Sent: 5, Answered: 5}
	if p := clean.problems(); len(p) != 0 {
		t.Errorf("clean run: %q", p)
	}
	var out bytes.Buffer
	if err := clean.writeText(&out); err != nil || !strings.Contains(out.String(), "problems: none") {
		t.Errorf("clean report: %v\n%s", err, out.String())
	}
	bad := &webReport{ConnectFails: 2, Lost: 3, Closed: 1, Notices: map[string]int{"rate": 4}}
	got := strings.Join(bad.problems(), "; ")
	for _, want := range []string{"2 sessions did not connect", "3 questions never answered", "closed 1 sessions", `4 notices "rate"`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
}
