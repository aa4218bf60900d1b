package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runProbe asks the serve process on this host for /readyz (or the path
// given) and succeeds on 200: a health check for images without a shell
// or an HTTP client, such as the distroless one. The port is LISTEN_ADDR's.
func runProbe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := "/readyz"
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		return fmt.Errorf("probe: unexpected argument %q", fs.Arg(1))
	}
	switch path {
	case "/livez", "/readyz", "/healthz":
	default:
		return fmt.Errorf("probe: want /livez or /readyz, not %q", path)
	}
	host, port, err := net.SplitHostPort(orDefault(getenv("LISTEN_ADDR"), ":8080"))
	if err != nil {
		return fmt.Errorf("probe: LISTEN_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256)) // only shown; a short read changes nothing
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s: %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s", path, body)
	return nil
}
