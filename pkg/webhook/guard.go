package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/handoff-dev/handoff/events"
)

var (
	// ErrAddressRejected is wrapped by the errors of [CheckAddr], of
	// [CheckURL] for a host that names a rejected address, and of dials that
	// [Guard.DialControl] stops.
	ErrAddressRejected = errors.New("webhook address rejected")

	// ErrInvalidURL is wrapped by the errors of [CheckURL] for a URL that is
	// not an absolute http or https URL with a host, or that contains
	// credentials or a fragment.
	ErrInvalidURL = errors.New("invalid webhook URL")
)

// Guard decides which addresses a webhook may reach. The zero Guard
// rejects every address that [CheckAddr] rejects without AllowLoopback.
type Guard struct {
	// AllowLoopback permits loopback addresses (127.0.0.0/8, ::1) and the
	// names localhost and *.localhost, for local development and tests.
	AllowLoopback bool

	// Allow lists address ranges that webhooks may reach although the
	// rules of CheckAddr reject them, such as the private network of a
	// cluster whose receivers the operator trusts.
	Allow []netip.Prefix
}

// rejectedPrefix is an address range that a webhook must not reach,
// with the reason given in the error.
type rejectedPrefix struct {
	prefix netip.Prefix
	reason string
}

// rejectedPrefixes are the ranges that netip.Addr's methods do not cover.
var rejectedPrefixes = []rejectedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"},
	// 100.100.100.200 is the Alibaba Cloud metadata address.
	{netip.MustParsePrefix("100.64.0.0/10"), "in the carrier-grade NAT range 100.64.0.0/10"},
	// 192.0.0.192 is the Oracle Cloud metadata address.
	{netip.MustParsePrefix("192.0.0.0/24"), "in the IETF protocol assignments range 192.0.0.0/24"},
	{netip.MustParsePrefix("198.18.0.0/15"), "in the benchmarking range 198.18.0.0/15"},
	{netip.MustParsePrefix("240.0.0.0/4"), "in the reserved range 240.0.0.0/4 (with the broadcast address)"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address (::/96, deprecated)"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local IPv6 address (fec0::/10, deprecated)"},
}

// Prefixes whose addresses embed an IPv4 address that a router or gateway
// reaches: NAT64 (RFC 6052) in the last 32 bits, 6to4 (RFC 3056) in bits 16
// to 47.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// metadataHosts are host names of cloud metadata services. They resolve to
// link-local addresses, which the dial-time check rejects too; CheckURL
// names them so that the error comes at submit time.
var metadataHosts = []string{"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}

// CheckAddr decides whether a webhook may connect to ip. It returns nil
// for a public unicast address and an error wrapping ErrAddressRejected for
// any of these, also in IPv4-mapped IPv6 form (::ffff:a.b.c.d) and inside
// NAT64 and 6to4 addresses:
//   - loopback (127.0.0.0/8, ::1), unless allowLoopback is set;
//   - private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7, which
//     includes the AWS metadata address fd00:ec2::254);
//   - link-local (169.254.0.0/16, fe80::/10), which includes the cloud
//     metadata address 169.254.169.254;
//   - multicast, unspecified (0.0.0.0, ::) and broadcast;
//   - carrier-grade NAT (100.64.0.0/10) and the other special ranges in
//     rejectedPrefixes.
func CheckAddr(ip netip.Addr, allowLoopback bool) error {
	return Guard{AllowLoopback: allowLoopback}.CheckAddr(ip)
}

// CheckURL checks a webhook URL before it is stored, at submit or
// subscription time, without resolving its host. The error wraps
// ErrInvalidURL unless raw is an absolute http or https URL with a host
// and without credentials or fragment. It wraps ErrAddressRejected when the
// host is one of these:
//   - an IP address that CheckAddr rejects;
//   - localhost or *.localhost, unless allowLoopback is set;
//   - a cloud metadata host name;
//   - a number that some resolvers read as an IPv4 address, such as
//     2130706433 or 0x7f.1.
//
// NOTE: a host name that resolves to a rejected address passes CheckURL.
// The notifier checks every resolved address again when it dials, which
// is the check that counts.
func CheckURL(raw string, allowLoopback bool) error {
	return Guard{AllowLoopback: allowLoopback}.CheckURL(raw)
}

// CheckAddr is the package's CheckAddr with the guard's settings: it also
// returns nil for an address in one of the Allow ranges.
func (g Guard) CheckAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid IP address", ErrAddressRejected)
	}
	original := ip
	ip = ip.WithZone("").Unmap()
	for _, p := range g.Allow {
		if p.Contains(ip) {
			return nil
		}
	}

	if reason := rejectReason(ip, g.AllowLoopback); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrAddressRejected, original, reason)
	}
	if ip.Is6() && (nat64Prefix.Contains(ip) || sixToFour.Contains(ip)) {
		inner := embeddedIPv4(ip)
		if reason := rejectReason(inner, g.AllowLoopback); reason != "" {
			return fmt.Errorf("%w: %s embeds %s, which is %s", ErrAddressRejected, original, inner, reason)
		}
	}
	return nil
}

// CheckURL is the package's CheckURL with the guard's settings.
func (g Guard) CheckURL(raw string) error {
	if err := events.ValidateWebhookURL(raw); err != nil {
		return fmt.Errorf("%w: the URL %w", ErrInvalidURL, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")

	if ip, err := netip.ParseAddr(host); err == nil {
		return g.CheckAddr(ip)
	}
	if looksNumeric(host) {
		return fmt.Errorf("%w: host %q is a number that resolvers may read as an IPv4 address; write the address as four decimal numbers, such as 192.0.2.1", ErrAddressRejected, host)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		if g.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%w: host %q is a loopback name (allowed only with AllowLoopback, for local development)", ErrAddressRejected, host)
	}
	for _, name := range metadataHosts {
		if host == name {
			return fmt.Errorf("%w: host %q is a cloud metadata service", ErrAddressRejected, host)
		}
	}
	return nil
}

// DialControl returns a net.Dialer ControlContext function that applies
// [Guard.CheckAddr] to the address of each connection just before it is
// made, after name resolution. So a host name that resolves to a rejected
// address is never contacted.
func (g Guard) DialControl() func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dial address %q on %s: %w", ErrAddressRejected, address, network, err)
		}
		return g.CheckAddr(ap.Addr())
	}
}

// rejectReason returns why ip is rejected, or "" if it is allowed.
func rejectReason(ip netip.Addr, allowLoopback bool) string {
	switch {
	case ip.IsLoopback():
		if allowLoopback {
			return ""
		}
		return "a loopback address (allowed only with AllowLoopback, for local development)"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast() && ip.Unmap().Is4():
		return "a link-local address (this range includes the cloud metadata address 169.254.169.254)"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, r := range rejectedPrefixes {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address inside a NAT64 or 6to4 address.
func embeddedIPv4(ip netip.Addr) netip.Addr {
	b := ip.As16()
	if sixToFour.Contains(ip) {
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	}
	return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
}

// looksNumeric reports whether every dot-separated label of host is a
// decimal, octal or hexadecimal number, as in 2130706433, 127.1 or
// 0x7f.0.0.1: inet_aton reads such hosts as IPv4 addresses.
func looksNumeric(host string) bool {
	if host == "" {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		digits := label
		if rest, ok := strings.CutPrefix(label, "0x"); ok {
			digits = rest
			if digits == "" {
				return false
			}
			for i := 0; i < len(digits); i++ {
				if !isHexDigit(digits[i]) {
					return false
				}
			}
			continue
		}
		if digits == "" {
			return false
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
}
