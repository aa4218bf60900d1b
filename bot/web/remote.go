package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseProxies reads WEB_TRUST_PROXY: addresses or CIDR prefixes,
// separated by commas or spaces ("10.0.0.5, 10.1.0.0/16").
func ParseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("proxy %q: want an IP address or a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// peer is the address of the other end of the TCP connection.
func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

func (a *Adapter) trusted(addr netip.Addr) bool {
	for _, p := range a.opts.TrustProxy {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientIP is the client's address: the peer's, unless the peer is a
// trusted proxy, in which case the nearest address in X-Forwarded-For that
// is not a trusted proxy (a client can write anything at the left end of
// the header; only what trusted proxies appended counts).
func (a *Adapter) clientIP(r *http.Request) netip.Addr {
	addr := peer(r)
	if !addr.IsValid() || !a.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // malformed: stop at the last address we can vouch for
		}
		h = h.WithZone("").Unmap()
		if !a.trusted(h) {
			return h
		}
		addr = h
	}
	return addr
}

// overTLS reports whether the browser reached us over HTTPS: directly, or
// through a trusted proxy that says so.
func (a *Adapter) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return a.trusted(peer(r)) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}
